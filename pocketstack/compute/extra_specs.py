"""Flavor extra-spec validation (microversion 2.86+): known keys get their values checked,
unknown keys inside a namespace we know (`hw:`, `hw_rng:`, ...) are refused, and keys in
other namespaces or without one pass, as in Nova.

Each entry is `name regex -> (type, constraint)`: `bool`; `int` with (min, max);
`str` with an enum tuple or a value regex.
"""
from __future__ import annotations

import re

from pocketstack.common.errors import BadRequest

_MASK = r"\^?\d+((-\d+)?(,\^?\d+(-\d+)?)?)*"
_BOOLS = {"1", "0", "t", "f", "true", "false", "on", "off", "y", "n", "yes", "no"}

SPECS: dict[str, tuple] = {
    r"hw:cpu_realtime": (bool, None),
    r"hw:cpu_realtime_mask": (str, _MASK),
    r"hw:hide_hypervisor_id": (bool, None),
    r"hw:cpu_policy": (str, ("dedicated", "shared", "mixed")),
    r"hw:cpu_thread_policy": (str, ("prefer", "isolate", "require")),
    r"hw:emulator_threads_policy": (str, ("isolate", "share")),
    r"hw:cpu_dedicated_mask": (str, _MASK),
    r"hw:mem_page_size": (str, r"(large|small|any|\d+([kKMGT]i?)?(b|bit|B)?)"),
    r"hw:locked_memory": (bool, None),
    r"hw:numa_nodes": (int, (1, None)),
    r"hw:numa_cpus\.\d+": (str, _MASK),
    r"hw:numa_mem\.\d+": (int, (0, None)),
    r"hw:pci_numa_affinity_policy": (str, ("required", "preferred", "legacy", "socket")),
    r"hw:cpu_(sockets|cores|threads|max_sockets|max_cores|max_threads)": (int, (1, None)),
    r"hw:boot_menu": (bool, None),
    r"hw:vif_multiqueue_enabled": (bool, None),
    r"hw:mem_encryption": (bool, None),
    r"hw:mem_encryption_model": (str, ("amd-sev", "amd-sev-es")),
    r"hw:pmem": (str, r"([a-zA-Z0-9_]+(,)?)+"),
    r"hw:pmu": (bool, None),
    r"hw:serial_port_count": (int, (0, None)),
    r"hw:tpm_model": (str, ("tpm-tis", "tpm-crb")),
    r"hw:tpm_version": (str, ("1.2", "2.0")),
    r"hw:tpm_secret_security": (str, ("user", "host", "deployment")),
    r"hw:watchdog_action": (str, ("none", "pause", "poweroff", "reset", "disabled")),
    r"hw:viommu_model": (str, ("intel", "smmuv3", "virtio", "auto")),
    r"hw:virtio_packed_ring": (bool, None),
    r"hw:sound_model": (str, ("sb16", "es1370", "pcspk", "ac97", "ich6", "ich9", "usb", "virtio")),
    r"hw:usb_model": (str, ("none", "auto", "piix3-uhci", "qemu-xhci", "nec-xhci", "usb-ehci")),
    r"hw:redirected_usb_ports": (int, (0, 15)),
    r"hw:ephemeral_encryption": (bool, None),
    r"hw:ephemeral_encryption_format": (str, ("luks", "plain")),
    r"hw_rng:allowed": (bool, None),
    r"hw_rng:rate_bytes": (int, (0, None)),
    r"hw_rng:rate_period": (int, (0, None)),
    r"hw_video:ram_max_mb": (int, (0, None)),
    r"quota:(cpu|disk|vif)_\w+": (int, (0, None)),
    r"quota:memory_\w+": (int, (0, None)),
    r"os:secure_boot": (str, ("required", "disabled", "optional")),
    r"os:monitors": (int, (0, None)),
    r"accel:device_profile": (str, r".+"),
    r"pci_passthrough:alias": (str, r"[^:]+:\d+(,[^:]+:\d+)*"),
    r"trait:[A-Za-z0-9_]+": (str, ("required", "forbidden")),
    r"resources\d*:[A-Za-z0-9_]+": (int, (0, None)),
}
NAMESPACES = {"hw", "hw_rng", "hw_video", "quota", "os", "accel", "pci_passthrough", "trait"}


def validate(name: str, value) -> None:
    text = str(value)
    for pattern, (kind, rule) in SPECS.items():
        if re.fullmatch(pattern, name):
            _check(kind, rule, text)
            return
    if ":" in name and name.split(":", 1)[0] in NAMESPACES:
        raise BadRequest(f"Validation failed; extra spec '{name}' does not appear to be a valid extra spec.")


def _check(kind, rule, value: str) -> None:
    if kind is bool:
        if value.strip().lower() not in _BOOLS:
            raise BadRequest(f"Validation failed; '{value}' is not a valid boolean-like value.")
    elif kind is int:
        try:
            number = int(value)
        except ValueError:
            raise BadRequest(f"Validation failed; '{value}' is not a valid integer value.") from None
        lo, hi = rule
        if hi is not None and number > hi:
            raise BadRequest(f"Validation failed; '{value}' is greater than the max value of '{hi}'.")
        if lo is not None and number < lo:
            raise BadRequest(f"Validation failed; '{value}' is less than the min value of '{lo}'.")
    elif isinstance(rule, tuple):
        if value not in rule:
            raise BadRequest(f"Validation failed; '{value}' is not one of: {', '.join(rule)}.")
    elif rule and not re.fullmatch(rule, value):
        raise BadRequest(f"Validation failed; '{value}' is not of the format '{rule}'.")
