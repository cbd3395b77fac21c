"""Which accelerator QEMU guests get here: KVM, proven by a probe, else TCG.

Opening `/dev/kvm` is not enough: on nested or restricted hosts the device opens and
`KVM_CREATE_VM` succeeds, yet a guest never runs (it hangs). So `detect()` boots a
512-byte payload under `qemu-system-x86_64 -enable-kvm`: SeaBIOS loads it as a boot
sector, it writes `KVMOK` to the first serial port and then exits QEMU through the
`isa-debug-exit` device. Only that exact output and exit code within a few seconds
count as "KVM works"; anything else (an error, a hang killed by the timeout) means TCG.

The answer is cached per boot of the host (keyed by `/proc/sys/kernel/random/boot_id`)
in `<cache>/kvm-probe.json`, so the probe costs its second or two once per boot.
`[compute] qemu_accel = auto|kvm|tcg` (or env POCKETSTACK_QEMU_ACCEL) forces a choice.

The probe runs with the CPU model guests will get: `-cpu host` first; where the host
model cannot start (nested KVM refusing an MSR such as IA32_ARCH_CAPABILITIES: QEMU
aborts at once), the next of `CPU_MODELS` is tried, and the one that ran is `Accel.cpu`.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("pocketstack.compute.kvm")

QEMU = "qemu-system-x86_64"
KVM_DEVICE = "/dev/kvm"
PROBE_TIMEOUT = 6.0
MARKER = b"KVMOK"
DEBUG_EXIT_PORT = 0xF4
DEBUG_EXIT_VALUE = 0x10
EXPECTED_EXIT = (DEBUG_EXIT_VALUE << 1) | 1  # isa-debug-exit: QEMU exits with (value << 1) | 1
# KVM guests' `-cpu`, best first ("" is QEMU's default model)
CPU_MODELS = ("host", "host,-arch-capabilities", "")


@dataclass
class Accel:
    name: str          # "kvm" or "tcg"
    reason: str        # why (shown in logs and `hypervisor show`'s cpu_info)
    probe_seconds: float = 0.0
    boot_id: str = ""
    cpu: str = "host"  # the `-cpu` KVM guests run with ("" : QEMU's default); unused under TCG

    @property
    def is_kvm(self) -> bool:
        return self.name == "kvm"


def probe_payload() -> bytes:
    """A boot sector (16-bit real mode): print MARKER + newline on COM1, then debug-exit."""
    code = bytearray()
    code += b"\xba\xf8\x03"                    # mov dx, 0x3f8
    for ch in MARKER + b"\n":
        code += b"\xb0" + bytes([ch]) + b"\xee"  # mov al, ch ; out dx, al
    code += b"\xba" + DEBUG_EXIT_PORT.to_bytes(2, "little")  # mov dx, 0xf4
    code += b"\xb0" + bytes([DEBUG_EXIT_VALUE]) + b"\xee"    # mov al, 0x10 ; out dx, al
    code += b"\xf4\xeb\xfd"                      # hlt ; jmp $-1 (never reached)
    return bytes(code).ljust(510, b"\0") + b"\x55\xaa"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def run_probe(accel: str = "kvm", timeout: float = PROBE_TIMEOUT, qemu: str | None = None,
              cpu: str = "") -> tuple[bool, str, float]:
    """Boot the payload with `-accel <accel>` (and `-cpu <cpu>`); (worked, reason, seconds)."""
    qemu = qemu or QEMU
    if shutil.which(qemu) is None:
        return False, f"{qemu} is not installed", 0.0
    if accel == "kvm" and not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return False, f"{KVM_DEVICE} is missing or not accessible", 0.0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pocketstack-kvm-probe-") as tmp:
        disk = Path(tmp) / "probe.img"
        disk.write_bytes(probe_payload())
        cmd = [qemu, "-accel", accel, "-machine", "pc", "-m", "16", "-nodefaults", "-no-user-config",
               "-display", "none", "-no-reboot", "-serial", "stdio",
               "-device", f"isa-debug-exit,iobase={DEBUG_EXIT_PORT:#x},iosize=0x04",
               "-drive", f"file={disk},format=raw,if=ide,index=0,media=disk"] + (["-cpu", cpu] if cpu else [])
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False, f"a {accel} guest did not finish within {timeout:.0f} s (hangs)", time.monotonic() - start
        except OSError as exc:
            return False, f"cannot run {qemu}: {exc}", 0.0
    took = time.monotonic() - start
    if proc.returncode == EXPECTED_EXIT and MARKER in proc.stdout:
        return True, f"a {accel} guest ran the probe in {took:.2f} s" + (f" (-cpu {cpu})" if cpu else ""), took
    err = (proc.stderr or b"").decode(errors="replace").strip().splitlines()
    return False, (f"the {accel} probe failed (exit {proc.returncode})" + (f": {err[-1]}" if err else "")), took


_lock = threading.Lock()
_memo: Accel | None = None


def _cache_file() -> Path:
    from pocketstack.compute import tinyimage

    return tinyimage.cache_root() / "kvm-probe.json"


def detect(force: str | None = None, *, use_cache: bool = True, timeout: float = PROBE_TIMEOUT) -> Accel:
    """The accelerator to use. `force` ("kvm"/"tcg"/"auto"/None) overrides; "auto" probes."""
    global _memo
    choice = (force or os.environ.get("POCKETSTACK_QEMU_ACCEL") or "auto").strip().lower()
    if choice == "tcg":
        return Accel("tcg", "TCG forced by configuration")
    if choice == "kvm":
        return Accel("kvm", "KVM forced by configuration")
    boot_id = _boot_id()
    with _lock:
        if use_cache and _memo is not None and _memo.boot_id == boot_id:
            return _memo
        cache = _cache_file()
        if use_cache:
            try:
                data = json.loads(cache.read_text())
                if data.get("boot_id") == boot_id and boot_id and "cpu" in data:
                    _memo = Accel(**data)
                    return _memo
            except (OSError, ValueError, TypeError):
                pass
        for cpu in CPU_MODELS:
            ok, reason, took = run_probe("kvm", timeout=timeout, cpu=cpu)
            if ok or "hangs" in reason or "exit" not in reason:
                break  # a hang or a missing device: another CPU model will not help
        result = Accel("kvm" if ok else "tcg", reason if ok else f"TCG: {reason}", round(took, 3), boot_id,
                       cpu if ok else "")
        log.info("QEMU accelerator: %s (%s)", result.name, result.reason)
        _memo = result
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(result)))
            os.replace(tmp, cache)
        except OSError:
            pass
        return result


def hypervisor_type_and_accel() -> dict:
    """What `hypervisor show` can display: {"hypervisor_type": "QEMU"|"KVM", "accel", "reason"}.

    Nova's libvirt driver reports `QEMU` for TCG guests and `KVM` with KVM; the compute
    helper puts `accel`/`reason` into the node's cpu_info."""
    acc = detect()
    return {"hypervisor_type": "KVM" if acc.is_kvm else "QEMU", "accel": acc.name, "reason": acc.reason}


def reset_memo() -> None:
    global _memo
    with _lock:
        _memo = None
