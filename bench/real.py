#!/usr/bin/env python3
"""Real instances: boot-to-ping / boot-to-SSH, guests per host, guest-to-guest throughput.

    make bench-real                    # needs root, QEMU and the tiny image's build tools
    .venv/bin/python bench/real.py --help

The QEMU virt driver boots `pocketstack-tiny` (accelerator as `kvm.detect()` decides, or
--accel) with a tap NIC per guest. The bench makes its own private network: a namespace
(`psb<random>`) holding a bridge with 10.250.<n>.1/24 and dnsmasq (a fixed lease per MAC);
each guest's tap is moved into that namespace and enslaved to the bridge, so nothing in the
host's own namespace is touched and every packet stays between the namespace and the guests.
(This is what the `linuxbridge` backend builds per network, without the cloud around it.)

  a. boot-to-ping and boot-to-SSH: from `spawn()` until `ping` from the namespace answers and
     until `ssh tiny@<ip> true` (the key from the config drive) succeeds; --boots guests one
     after the other, median (p50) reported;
  b. guests per host: --guests idle guests running together; per guest the QEMU process's
     PSS and RSS (/proc/<pid>/smaps_rollup) and its CPU use while idle; MemAvailable divided
     by the mean PSS is the memory-bound count (an extrapolation, stated as such);
  c. dataplane: busybox `nc < file` (a file in RAM) from one guest to another's `nc -l`, timed
     inside the sender with /proc/uptime, --mib MiB, median of --rounds; the same commands
     (the host's busybox) across a veth pair between two namespaces as the baseline;
  d. live migration: one guest, while pinged every 0.1 s, moved with `live_migrate` to a
     second QemuDriver host of this machine (seconds, pings lost), then reached over SSH.

Only what this script started is stopped (QEMU through the driver, dnsmasq by PID), and the
namespaces it made are deleted.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import secrets
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from common import loadavg, log, write_section  # noqa: E402

SECTION = "## Real instances: boot time, guests per host, dataplane throughput"


def sh(*args, check=True, timeout=60, ns: str | None = None) -> subprocess.CompletedProcess:
    cmd = [str(a) for a in args]
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {res.returncode}: {res.stderr.strip()}{res.stdout.strip()}")
    return res


def why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (taps, a namespace with a bridge, dnsmasq)"
    for tool in ("qemu-system-x86_64", "qemu-img", "ip", "dnsmasq", "ssh", "ssh-keygen", "busybox"):
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            return f"needs {tool} (tools/install-system-deps.sh)"
    return None


class PrivateNet:
    """A namespace with a bridge, an address and dnsmasq: the guests' only neighbours."""

    def __init__(self, work: Path):
        self.ns = "psb" + secrets.token_hex(3)
        self.subnet = f"10.250.{int(self.ns[3:5], 16)}"
        self.work = work
        self.dnsmasq: subprocess.Popen | None = None
        self.hosts: dict[str, str] = {}  # mac -> ip

    def __enter__(self) -> "PrivateNet":
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "set", "lo", "up", ns=self.ns)
        sh("ip", "link", "add", "br0", "type", "bridge", ns=self.ns)
        sh("ip", "addr", "add", f"{self.subnet}.1/24", "dev", "br0", ns=self.ns)
        sh("ip", "link", "set", "br0", "up", ns=self.ns)
        return self

    def add_guest(self, n: int) -> tuple[str, str]:
        mac, ip = f"fa:16:3e:25:{n // 256:02x}:{n % 256:02x}", f"{self.subnet}.{10 + n}"
        self.hosts[mac] = ip
        return mac, ip

    def start_dhcp(self) -> None:
        conf = self.work / "dnsmasq.conf"
        conf.write_text("".join(f"dhcp-host={mac},{ip}\n" for mac, ip in self.hosts.items()))
        self.dnsmasq = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground",
             "--no-resolv", "--no-hosts", "--port=0", "--interface=br0", "--bind-interfaces", f"--conf-file={conf}",
             f"--dhcp-range={self.subnet}.10,{self.subnet}.200,255.255.255.0,1h",
             f"--dhcp-leasefile={self.work / 'leases'}", f"--pid-file={self.work / 'dnsmasq.pid'}", "--user=root"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def plug(self, tap: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not Path(f"/sys/class/net/{tap}").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"QEMU never created {tap}")
            time.sleep(0.02)
        sh("ip", "link", "set", tap, "netns", self.ns)
        sh("ip", "link", "set", tap, "master", "br0", "up", ns=self.ns)

    def __exit__(self, *exc) -> None:
        if self.dnsmasq is not None:
            self.dnsmasq.terminate()
            try:
                self.dnsmasq.wait(5)
            except subprocess.TimeoutExpired:
                self.dnsmasq.kill()
        sh("ip", "netns", "delete", self.ns, check=False)


class Guests:
    def __init__(self, args, work: Path, net: PrivateNet):
        from pocketstack.compute import tinyimage
        from pocketstack.compute.virt.qemu import QemuDriver

        self.image = tinyimage.build()
        self.key = work / "id_ed25519"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key)
        self.pub = self.key.with_suffix(".pub").read_text().strip()
        self.net = net
        self.ram = args.ram
        self.driver = QemuDriver("bench-real", instances_dir=work / "instances", accel=args.accel,
                                 image_loader=lambda _id: ({"disk_format": "qcow2"}, iter([self.image.read_bytes()])),
                                 force_config_drive=True, shutdown_timeout=5)
        self.running: list = []
        self.count = 0

    def info(self, n: int):
        from pocketstack.compute.virt import driver as d

        mac, ip = self.net.add_guest(n)
        u = str(uuid.uuid4())
        inst = d.InstanceInfo(uuid=u, name=f"instance-{n:08x}", display_name=f"bench-{n}",
                              flavor={"vcpus": 1, "memory_mb": self.ram, "root_gb": 1}, image_ref="tiny",
                              key_data=self.pub,
                              network_info=[{"id": u, "address": mac, "devname": f"tapb{u[:10]}", "network": {}}])
        inst.ip = ip
        return inst

    def ssh(self, inst, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh("ssh", "-i", self.key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                  "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o",
                  "IdentitiesOnly=yes", f"tiny@{inst.ip}", command, ns=self.net.ns, check=False, timeout=timeout)

    def boot(self, inst, timeout: float = 300) -> tuple[float, float]:
        """Spawn; seconds until ping answers and until SSH runs a command."""
        start = time.monotonic()
        self.driver.spawn(inst)
        self.running.append(inst)
        self.net.plug(inst.network_info[0]["devname"])
        t_ping = t_ssh = None
        while time.monotonic() - start < timeout:
            if t_ping is None:
                if sh("busybox", "ping", "-c1", "-W1", inst.ip, ns=self.net.ns, check=False).returncode == 0:
                    t_ping = time.monotonic() - start
                continue
            if self.ssh(inst, "true", timeout=30).returncode == 0:
                t_ssh = time.monotonic() - start
                return t_ping, t_ssh
            time.sleep(0.2)
        raise RuntimeError(f"guest {inst.ip} not reachable within {timeout} s (ping {t_ping}); console:\n"
                           + self.driver.get_console_output(inst)[-2000:])

    def destroy_all(self) -> None:
        for inst in self.running:
            try:
                self.driver.destroy(inst)
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                log(f"destroy {inst.uuid}: {exc}")
        self.running = []


def live_migration(guests: "Guests", net: PrivateNet, inst, work: Path) -> tuple[float, int, int]:
    """Seconds `live_migrate` takes, and pings (every 0.1 s from the namespace) lost meanwhile."""
    from pocketstack.compute.virt.qemu import QemuDriver

    dest = QemuDriver("bench-real-2", instances_dir=work / "instances-2", accel=guests.driver.accel.name,
                      image_loader=guests.driver.image_loader, force_config_drive=True)
    count = 80
    ping = subprocess.Popen(["ip", "netns", "exec", net.ns, "busybox", "ping", "-i", "0.1", "-c", str(count),
                             inst.ip], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        start = time.monotonic()
        guests.driver.live_migrate(inst, dest.host)
        took = time.monotonic() - start
        out = ping.communicate(timeout=60)[0]
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait()
    guests.running.remove(inst)
    try:
        if guests.ssh(inst, "true").returncode != 0:
            raise RuntimeError("the migrated guest does not answer SSH")
    finally:
        dest.destroy(inst)
    received = int(re.search(r"(\d+) packets received", out).group(1))
    return took, count - received, count


def memory_of(pid: int) -> tuple[int, int]:
    """(PSS, RSS) of a process in KiB."""
    pss = rss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
        elif line.startswith("Rss:"):
            rss = int(line.split()[1])
    return pss, rss


def guest_ram_rss(pid: int, ram_mib: int) -> int:
    """KiB resident of the mapping that is the guest's RAM (anonymous, exactly its size)."""
    size, out = None, 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            size = (hi - lo) if len(head) == 5 else None
        elif line.startswith("Rss:") and size == ram_mib << 20:
            out = max(out, int(line.split()[1]))
    return out


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def mem_available_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


# the data: a file of `yes` lines (the guest's user cannot read /dev/zero) written first,
# in RAM (the guest's /tmp is a tmpfs), so only `nc` runs while the clock does
SEND = ("yes " + "p" * 4095 + " | head -c {size} > {blob}; a=$(cut -d' ' -f1 /proc/uptime); "
        "busybox nc {ip} {port} < {blob}; b=$(cut -d' ' -f1 /proc/uptime); rm -f {blob}; echo $a $b")
RECV = "sleep 600 | busybox nc -l -p {port} | wc -c"


def timed_transfer(start_receiver, run_sender, mib: int, port: int, blob: str) -> float:
    """MB/s of one transfer: the receiver started first, the sender timed by /proc/uptime.
    The receiver's `sleep | nc -l` keeps nc's stdin open; its process group is killed after
    `wc -c` has printed the byte count."""
    receiver = start_receiver(RECV.format(port=port))
    try:
        time.sleep(1.0)
        out = run_sender(SEND.format(size=mib << 20, ip="{ip}", port=port, blob=blob))
        a, b = (float(x) for x in out.split()[-2:])
        ready, _, _ = select.select([receiver.stdout], [], [], 60)
        got = int(receiver.stdout.readline().strip() or 0) if ready else -1
    finally:
        try:
            os.killpg(receiver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        receiver.wait()
    if got != mib << 20:
        raise RuntimeError(f"the receiver got {got} bytes of {mib << 20}")
    return (mib << 20) / 1e6 / max(b - a, 0.01)


def veth_baseline(mib: int, rounds: int, work: Path) -> list[float]:
    tag = secrets.token_hex(3)
    a, b = f"psva{tag}", f"psvb{tag}"
    sh("ip", "netns", "add", a)
    sh("ip", "netns", "add", b)
    try:
        sh("ip", "link", "add", "veth0", "netns", a, "type", "veth", "peer", "name", "veth1", "netns", b)
        for ns, ip, dev in ((a, "10.251.0.1/24", "veth0"), (b, "10.251.0.2/24", "veth1")):
            sh("ip", "link", "set", "lo", "up", ns=ns)
            sh("ip", "addr", "add", ip, "dev", dev, ns=ns)
            sh("ip", "link", "set", dev, "up", ns=ns)
        results = []
        for r in range(rounds):
            def receiver(cmd, ns=a):
                return subprocess.Popen(["ip", "netns", "exec", ns, "sh", "-c", cmd], stdout=subprocess.PIPE,
                                        text=True, start_new_session=True)

            def sender(cmd, ns=b):
                return sh("sh", "-c", cmd.replace("{ip}", "10.251.0.1"), ns=ns, timeout=300).stdout

            results.append(timed_transfer(receiver, sender, mib, 5001 + r, str(work / "blob")))
        return results
    finally:
        sh("ip", "netns", "delete", a, check=False)
        sh("ip", "netns", "delete", b, check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boots", type=int, default=3, help="sequential boots for boot-to-ping/SSH (p50)")
    ap.add_argument("--guests", type=int, default=3, help="idle guests measured together")
    ap.add_argument("--ram", type=int, default=256, help="guest RAM (MiB)")
    ap.add_argument("--mib", type=int, default=64, help="MiB per throughput transfer")
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds (median)")
    ap.add_argument("--idle", type=float, default=20.0, help="seconds a guest idles before it is measured")
    ap.add_argument("--accel", default=None, help="kvm|tcg (default: kvm.detect())")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = ap.parse_args()
    reason = why_not()
    if reason:
        print(f"bench/real.py: skipped: {reason}")
        return 0
    loads = [loadavg()]
    work = Path(tempfile.mkdtemp(prefix="ps-bench-real-"))
    res: dict = {}
    try:
        with PrivateNet(work) as net:
            guests = Guests(args, work, net)
            acc = guests.driver.accel
            log(f"accelerator: {acc.name} ({acc.reason})")
            insts = [guests.info(n) for n in range(max(args.boots, args.guests, 2))]
            net.start_dhcp()
            # a. boots, one after the other (the first --guests stay up for b and c)
            pings, sshs = [], []
            for n in range(args.boots):
                t_ping, t_ssh = guests.boot(insts[n])
                pings.append(t_ping)
                sshs.append(t_ssh)
                log(f"boot {n + 1}: ping after {t_ping:.1f} s, SSH after {t_ssh:.1f} s")
                if n >= args.guests:
                    guests.driver.destroy(insts[n])
                    guests.running.remove(insts[n])
            loads.append(loadavg())
            for inst in insts[args.boots:args.guests]:
                guests.boot(inst)
            up = guests.running[:args.guests]
            # b. idle guests: memory and CPU
            time.sleep(args.idle)
            pids = [guests.driver.pid_of(i.uuid) for i in up]
            ticks0, t0 = [cpu_ticks(p) for p in pids], time.monotonic()
            time.sleep(10)
            hz = os.sysconf("SC_CLK_TCK")
            cpu = [(cpu_ticks(p) - c) / hz / (time.monotonic() - t0) * 100 for p, c in zip(pids, ticks0)]
            mems = [memory_of(p) for p in pids]
            res["guest_ram"] = statistics.mean(guest_ram_rss(p, args.ram) for p in pids)
            avail = mem_available_kib()
            pss = statistics.mean(m[0] for m in mems)
            rss = statistics.mean(m[1] for m in mems)
            res.update(pss=pss, rss=rss, avail=avail, cpu=statistics.mean(cpu), n_idle=len(up))
            log(f"idle guests: PSS {pss / 1024:.0f} MiB, RSS {rss / 1024:.0f} MiB, CPU {res['cpu']:.1f} % each; "
                f"MemAvailable {avail / 1024:.0f} MiB")
            loads.append(loadavg())
            # c. guest to guest
            src, dst = up[0], up[1]
            vm = []
            for r in range(args.rounds):
                def receiver(cmd, g=dst):
                    return subprocess.Popen(
                        ["ip", "netns", "exec", net.ns, "ssh", "-i", str(guests.key), "-o", "StrictHostKeyChecking=no",
                         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                         f"tiny@{g.ip}", cmd], stdout=subprocess.PIPE, text=True, start_new_session=True)

                def sender(cmd, g=src, to=dst):
                    out = guests.ssh(g, cmd.replace("{ip}", to.ip), timeout=600)
                    if out.returncode != 0:
                        raise RuntimeError(f"sender failed: {out.stderr}")
                    return out.stdout

                vm.append(timed_transfer(receiver, sender, args.mib, 5001 + r, "/tmp/psbench.blob"))
                log(f"guest -> guest round {r + 1}: {vm[-1]:.1f} MB/s")
            loads.append(loadavg())
            # d. live migration of a guest (with its tap) to a second host of this machine
            res["migration"] = live_migration(guests, net, src, work)
            log(f"live migration: {res['migration'][0]:.2f} s, {res['migration'][1]} of "
                f"{res['migration'][2]} pings lost")
            guests.destroy_all()
        veth = veth_baseline(args.mib, args.rounds, work)
        log(f"veth pair: {', '.join(f'{x:.0f}' for x in veth)} MB/s")
        loads.append(loadavg())
    finally:
        if "guests" in locals():
            guests.destroy_all()
        shutil.rmtree(work, ignore_errors=True)
    res.update(ping=statistics.median(pings), ssh=statistics.median(sshs), pings=pings, sshs=sshs,
               vm=statistics.median(vm), veth=statistics.median(veth), accel=acc, loads=loads)
    text = render(res, args)
    print(text)
    if not args.no_doc:
        write_section(REPO / "docs" / "benchmarks.md", SECTION, text)
        log("docs/benchmarks.md updated")
    return 0


def render(r: dict, args) -> str:
    acc = r["accel"]
    fit = int(r["avail"] / r["pss"]) if r["pss"] else 0
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""{SECTION}

Measured **{now}** by `bench/real.py` (`make bench-real`; {os.cpu_count()} cores,
{platform.platform()}; accelerator: {acc.reason}). Guests are
`pocketstack-tiny` ({args.ram} MiB, 1 vCPU, config drive, one virtio NIC) booted by the QEMU
driver; their taps sit on a bridge in a private namespace with dnsmasq (see the script).

| measurement | result |
|---|---|
| boot to ping, p50 of {len(r['pings'])} ({', '.join(f'{x:.1f}' for x in r['pings'])} s) | **{r['ping']:.1f} s** |
| boot to SSH (`ssh tiny@ip true`), p50 of {len(r['sshs'])} ({', '.join(f'{x:.1f}' for x in r['sshs'])} s) | **{r['ssh']:.1f} s** |
| idle guest, QEMU process PSS / RSS (mean of {r['n_idle']}) | **{r['pss'] / 1024:.0f} MiB** / {r['rss'] / 1024:.0f} MiB |
| of that RSS: guest RAM the guest has touched / the rest (QEMU{', TCG code cache' if not acc.is_kvm else ''}) | {r['guest_ram'] / 1024:.0f} MiB / {(r['rss'] - r['guest_ram']) / 1024:.0f} MiB |
| idle guest CPU (mean of {r['n_idle']}, over 10 s) | {r['cpu']:.1f} % of one core |
| guests per host, memory-bound: MemAvailable {r['avail'] / 1024:.0f} MiB / PSS | **~{fit}** (extrapolated) |
| guest to guest over TCP: busybox `nc` sending a file held in RAM, {args.mib} MiB, median of {args.rounds} | **{r['vm']:.1f} MB/s** |
| the same across a veth pair between two namespaces (no VM) | {r['veth']:.1f} MB/s |
| live migration of an idle guest with its tap to a second host of this machine (NBD mirror + RAM) | **{r['migration'][0]:.2f} s**, {r['migration'][1]} of {r['migration'][2]} pings (every 0.1 s) lost |

Guests per host is an extrapolation from {r['n_idle']} idle guests: MemAvailable (with them
running) divided by one guest's PSS, which holds the guest RAM the guest has touched (the tiny
image's root file system is its initramfs, so it lives in that RAM) and QEMU's own
memory{' (under TCG also its cache of translated code)' if not acc.is_kvm else ''}; it is
the memory bound only: the {os.cpu_count()} cores are the limit long before it as soon as guests
do work (a booting guest takes a core{' under TCG' if not acc.is_kvm else ''}). Throughput is
timed inside the sender (`/proc/uptime`) and checked against the receiver's byte count; busybox
`nc` itself caps the veth figure, so the ratio ({r['vm'] / r['veth'] * 100:.0f} %) is the cost of
the guests{' (TCG emulates every instruction of both)' if not acc.is_kvm else ''} and their
virtio NICs, taps and bridge. MB = 10^6 bytes.

**Load average** (1/5/15 min) at start, after the boots, after the idle measurement, after the
guest transfers and at the end: {' -> '.join(r['loads'])}. A shared 2-core machine: treat
differences under ~15 % as noise. Rerun: `make bench-real` (root).
"""


if __name__ == "__main__":
    sys.exit(main())
