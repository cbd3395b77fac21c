"""The `lvm` volume backend: thin logical volumes in a volume group (the install guide's
`cinder-volumes`), as Cinder's LVM driver with `lvm_type = thin`.

Configuration: `[volume] backend = lvm`, `[volume] volume_group = cinder-volumes` (the
operator creates the VG: `pvcreate /dev/sdb; vgcreate cinder-volumes /dev/sdb`), optional
`[volume] lvm_pool_name` (default `<vg>-pool`, created on first use from 95% of the VG's
free space). Volumes are thin LVs `volume-<id>` in the pool; snapshots are thin snapshots
`snapshot-<id>` (no space until the origin diverges) and clones/volumes-from-snapshots are
thin snapshots too, all activated (`-kn`) so they have a device node. Writes of a whole
volume (image data, restores) go to a temporary LV that replaces the real one by renames,
so a crash never leaves a half-written volume under its real name (the stray `tmp-` LV is
removed on the next write or by an operator).

`initialize_connection` returns the LV's device path (`/dev/<vg>/volume-<id>`) for a
compute host on this machine; an iSCSI export of the same path (the guide's `lioadm`
target) is what a remote compute host will get, behind the same method.

Every LVM command goes through `self.run`, so the backend is tested with a recording
runner everywhere and against a real VG on a loop device where the kernel has
device-mapper (tests/volume/test_lvm.py).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from pocketstack.volume.backends.base import BackendError, VolumeBackend

GiB = 1 << 30
Runner = Callable[[list[str]], str]


def run_command(argv: list[str]) -> str:
    env = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}
    try:
        res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    except FileNotFoundError:
        raise BackendError(f"{argv[0]} is not installed (install lvm2)") from None
    if res.returncode != 0:
        raise BackendError(f"{' '.join(argv[:2])} failed: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


class LvmBackend(VolumeBackend):
    name = "lvm"
    storage_protocol = "local"

    def __init__(self, volume_group: str, *, backend_name: str = "lvm", pool_name: str | None = None,
                 root: Path | None = None, run: Runner = run_command):
        if not volume_group or "/" in volume_group:
            raise ValueError(f"invalid [volume] volume_group {volume_group!r}")
        self.vg = volume_group
        self.pool = pool_name or f"{volume_group}-pool"
        self.backend_name = backend_name
        self.run = run
        self.root = root or Path("/tmp")  # scratch files (image conversion)
        self.root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ names
    def _lv(self, kind: str, ident: str) -> str:
        if not ident or not all(c.isalnum() or c in "-_." for c in ident) or ident.startswith("."):
            raise BackendError(f"invalid id {ident!r}")
        return f"{kind}-{ident}"

    def _dev(self, lv: str) -> Path:
        return Path("/dev") / self.vg / lv

    def path(self, volume_id: str) -> Path:
        return self._dev(self._lv("volume", volume_id))

    def _lvs(self) -> dict[str, int]:
        """LV name -> size in bytes."""
        out = self.run(["lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size", self.vg])
        lvs = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2:
                lvs[parts[0]] = int(float(parts[1]))
        return lvs

    def _ensure_pool(self) -> None:
        if self.pool in self._lvs():
            return
        self.run(["lvcreate", "--yes", "-T", "-l", "95%FREE", f"{self.vg}/{self.pool}"])

    def _thin_snapshot(self, source_lv: str, new_lv: str) -> None:
        self.run(["lvcreate", "--yes", "-s", "-kn", "-n", new_lv, f"{self.vg}/{source_lv}"])

    def _grow(self, lv: str, size_gb: int) -> None:
        if self._lvs().get(lv, 0) < size_gb * GiB:
            self.run(["lvextend", "-L", f"{size_gb}g", f"{self.vg}/{lv}"])

    def _remove(self, lv: str) -> None:
        if lv in self._lvs():
            self.run(["lvremove", "-f", f"{self.vg}/{lv}"])

    # ------------------------------------------------------------------ capacity
    def capabilities(self) -> dict:
        out = self.run(["vgs", "--noheadings", "--units", "g", "--nosuffix", "-o", "vg_size,vg_free", self.vg])
        size, free = (float(x) for x in out.split()[:2])
        provisioned = sum(v for k, v in self._lvs().items() if k.startswith("volume-")) / GiB
        return {
            "pool_name": self.backend_name, "volume_backend_name": self.backend_name, "vendor_name": "pocketstack",
            "driver_version": "1.0.0", "storage_protocol": self.storage_protocol,
            "total_capacity_gb": round(size, 2), "free_capacity_gb": round(free, 2),
            "allocated_capacity_gb": round(size - free, 2), "provisioned_capacity_gb": round(provisioned, 2),
            "max_over_subscription_ratio": "20.0", "thin_provisioning_support": True,
            "thick_provisioning_support": False, "reserved_percentage": 0, "multiattach": True,
            "QoS_support": False, "location_info": f"LVMVolumeDriver:{self.vg}:{self.pool}:thin", "timestamp": None,
        }

    # ------------------------------------------------------------------ volumes
    def create_volume(self, volume_id: str, size_gb: int) -> str:
        self._ensure_pool()
        lv = self._lv("volume", volume_id)
        self.run(["lvcreate", "--yes", "-T", "-V", f"{size_gb}g", "-n", lv, f"{self.vg}/{self.pool}"])
        return str(self._dev(lv))

    def delete_volume(self, volume_id: str) -> None:
        self._remove(self._lv("volume", volume_id))

    def volume_exists(self, volume_id: str) -> bool:
        return self._lv("volume", volume_id) in self._lvs()

    def extend_volume(self, volume_id: str, new_size_gb: int) -> None:
        lv = self._lv("volume", volume_id)
        if lv not in self._lvs():
            raise BackendError(f"volume {volume_id} has no logical volume")
        self.run(["lvextend", "-L", f"{new_size_gb}g", f"{self.vg}/{lv}"])

    def clone_volume(self, volume_id: str, source_id: str, size_gb: int) -> str:
        lv = self._lv("volume", volume_id)
        self._thin_snapshot(self._lv("volume", source_id), lv)
        self._grow(lv, size_gb)
        return str(self._dev(lv))

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> str:
        lv = self._lv("snapshot", snapshot_id)
        self._thin_snapshot(self._lv("volume", volume_id), lv)
        return str(self._dev(lv))

    def delete_snapshot(self, snapshot_id: str) -> None:
        self._remove(self._lv("snapshot", snapshot_id))

    def volume_from_snapshot(self, volume_id: str, snapshot_id: str, size_gb: int) -> str:
        lv = self._lv("volume", volume_id)
        self._thin_snapshot(self._lv("snapshot", snapshot_id), lv)
        self._grow(lv, size_gb)
        return str(self._dev(lv))

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """A new thin snapshot of the snapshot takes the volume's name (the snapshot stays)."""
        lv = self._lv("volume", volume_id)
        size = self._lvs().get(lv)
        if size is None:
            raise BackendError(f"volume {volume_id} has no logical volume")
        tmp = f"tmp-{lv}"
        self._remove(tmp)
        self._thin_snapshot(self._lv("snapshot", snapshot_id), tmp)
        self._grow(tmp, -(-size // GiB))
        self._swap(lv, tmp)

    def _swap(self, lv: str, tmp: str) -> None:
        old = f"old-{lv}"
        self._remove(old)
        if lv in self._lvs():
            self.run(["lvrename", self.vg, lv, old])
        self.run(["lvrename", self.vg, tmp, lv])
        self._remove(old)

    def write_volume(self, volume_id: str, chunks: Iterable[bytes], size_gb: int) -> int:
        lv = self._lv("volume", volume_id)
        tmp = f"tmp-{lv}"
        self._ensure_pool()
        self._remove(tmp)
        self.run(["lvcreate", "--yes", "-T", "-V", f"{size_gb}g", "-n", tmp, f"{self.vg}/{self.pool}"])
        written = 0
        try:
            with open(self._dev(tmp), "r+b", buffering=0) as fh:
                for chunk in chunks:
                    if not chunk:
                        continue
                    written += len(chunk)
                    if written > size_gb * GiB:
                        raise BackendError(f"the data ({written} bytes so far) does not fit in {size_gb} GiB")
                    if chunk.count(0) == len(chunk):
                        fh.seek(len(chunk), os.SEEK_CUR)  # a new thin LV reads zeros: leave it unallocated
                    else:
                        fh.write(chunk)
                os.fsync(fh.fileno())
        except BaseException:
            self._remove(tmp)
            raise
        self._swap(lv, tmp)
        return written

    def _read(self, lv: str, chunk_size: int) -> Iterator[bytes]:
        dev = self._dev(lv)
        if lv not in self._lvs():
            raise BackendError(f"{lv} does not exist")

        def gen():
            with open(dev, "rb") as fh:
                while True:
                    chunk = fh.read(chunk_size)
                    if not chunk:
                        return
                    yield chunk

        return gen()

    def read_volume(self, volume_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return self._read(self._lv("volume", volume_id), chunk_size)

    def read_snapshot(self, snapshot_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        return self._read(self._lv("snapshot", snapshot_id), chunk_size)

    def open_volume(self, volume_id: str) -> BinaryIO:
        return open(self.path(volume_id), "r+b")

    def initialize_connection(self, volume_id: str, connector: dict) -> dict:
        return {"driver_volume_type": "local",
                "data": {"device_path": str(self.path(volume_id)), "volume_id": volume_id, "access_mode": "rw"}}

    # ------------------------------------------------------------------ manage
    def _listing(self, kind: str) -> list[dict]:
        return [{"name": name, "size_bytes": size} for name, size in sorted(self._lvs().items())
                if name.startswith(f"{kind}-")]

    def _adopt(self, kind: str, ident: str, source_name: str) -> int:
        lvs = self._lvs()
        if source_name not in lvs or not source_name.startswith(f"{kind}-"):
            raise BackendError(f"no logical volume named {source_name} in {self.vg}")
        lv = self._lv(kind, ident)
        if source_name != lv:
            self.run(["lvrename", self.vg, source_name, lv])
        return max(1, -(-lvs[source_name] // GiB))

    def list_manageable(self) -> list[dict]:
        return self._listing("volume")

    def manage_existing(self, volume_id: str, source_name: str) -> int:
        return self._adopt("volume", volume_id, source_name)

    def list_manageable_snapshots(self) -> list[dict]:
        return self._listing("snapshot")

    def manage_existing_snapshot(self, snapshot_id: str, source_name: str) -> int:
        return self._adopt("snapshot", snapshot_id, source_name)
