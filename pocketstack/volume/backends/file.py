"""The `file` volume backend: one sparse raw file per volume and per snapshot.

`<state_dir>/volume/<backend>/volume-<id>` and `snapshot-<id>`. A new volume is a sparse
file of its size (no space used until written); snapshots and clones are copies made
with reflinks where the filesystem has them (`cp --reflink=auto`, copy-on-write on XFS
and btrfs) and sparse-aware copies otherwise. Every file is written under a temporary
name, fsynced and renamed, so a crash never leaves a half-copied volume under its real
name. Capacity is the filesystem's (or `[backend] file_capacity_gb` when set).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from pocketstack.volume.backends.base import BackendError, VolumeBackend

GiB = 1 << 30


class FileBackend(VolumeBackend):
    name = "file"
    storage_protocol = "file"

    def __init__(self, root: Path, *, backend_name: str = "file", capacity_gb: int | None = None,
                 thin: bool = True):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.backend_name = backend_name
        self.capacity_gb = capacity_gb
        self.thin = thin

    # ------------------------------------------------------------------ paths
    def _vol(self, volume_id: str) -> Path:
        return self.root / f"volume-{_safe(volume_id)}"

    def _snap(self, snapshot_id: str) -> Path:
        return self.root / f"snapshot-{_safe(snapshot_id)}"

    def path(self, volume_id: str) -> Path:
        return self._vol(volume_id)

    # ------------------------------------------------------------------ capacity
    def capabilities(self) -> dict:
        st = os.statvfs(self.root)
        fs_total = st.f_blocks * st.f_frsize / GiB
        fs_free = st.f_bavail * st.f_frsize / GiB
        provisioned = sum(p.stat().st_size for p in self.root.glob("volume-*")) / GiB
        allocated = sum(p.stat().st_blocks * 512 for p in self.root.glob("*-*")) / GiB
        total = float(self.capacity_gb) if self.capacity_gb else fs_total
        free = max(0.0, min(fs_free, total - allocated)) if self.capacity_gb else fs_free
        return {
            "pool_name": self.backend_name,
            "volume_backend_name": self.backend_name,
            "vendor_name": "pocketstack",
            "driver_version": "1.0.0",
            "storage_protocol": self.storage_protocol,
            "total_capacity_gb": round(total, 2),
            "free_capacity_gb": round(free, 2),
            "allocated_capacity_gb": round(allocated, 2),
            "provisioned_capacity_gb": round(provisioned, 2),
            "max_over_subscription_ratio": "20.0",
            "thin_provisioning_support": self.thin,
            "thick_provisioning_support": not self.thin,
            "reserved_percentage": 0,
            "multiattach": True,
            "QoS_support": False,
            "timestamp": None,
        }

    # ------------------------------------------------------------------ volumes
    def create_volume(self, volume_id: str, size_gb: int) -> str:
        dest = self._vol(volume_id)
        tmp = _tmp(dest)
        with open(tmp, "wb") as fh:
            fh.truncate(size_gb * GiB)
            _fsync(fh)
        os.replace(tmp, dest)
        return str(dest)

    def delete_volume(self, volume_id: str) -> None:
        self._vol(volume_id).unlink(missing_ok=True)

    def volume_exists(self, volume_id: str) -> bool:
        return self._vol(volume_id).exists()

    def extend_volume(self, volume_id: str, new_size_gb: int) -> None:
        path = self._vol(volume_id)
        if not path.exists():
            raise BackendError(f"volume {volume_id} has no data file")
        with open(path, "r+b") as fh:
            if fh.seek(0, os.SEEK_END) > new_size_gb * GiB:
                raise BackendError("a volume cannot shrink")
            fh.truncate(new_size_gb * GiB)
            _fsync(fh)

    def clone_volume(self, volume_id: str, source_id: str, size_gb: int) -> str:
        return self._copy(self._vol(source_id), self._vol(volume_id), size_gb)

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> str:
        return self._copy(self._vol(volume_id), self._snap(snapshot_id), None)

    def delete_snapshot(self, snapshot_id: str) -> None:
        self._snap(snapshot_id).unlink(missing_ok=True)

    def volume_from_snapshot(self, volume_id: str, snapshot_id: str, size_gb: int) -> str:
        return self._copy(self._snap(snapshot_id), self._vol(volume_id), size_gb)

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        size = self._vol(volume_id).stat().st_size
        self._copy(self._snap(snapshot_id), self._vol(volume_id), size // GiB)

    def write_volume(self, volume_id: str, chunks: Iterable[bytes], size_gb: int) -> int:
        dest = self._vol(volume_id)
        tmp = _tmp(dest)
        written = 0
        try:
            with open(tmp, "wb") as fh:
                for chunk in chunks:
                    if not chunk:
                        continue
                    written += len(chunk)
                    if written > size_gb * GiB:
                        raise BackendError(f"the data ({written} bytes so far) does not fit in {size_gb} GiB")
                    if chunk.count(0) == len(chunk):
                        fh.seek(len(chunk), os.SEEK_CUR)  # keep zero runs sparse
                    else:
                        fh.write(chunk)
                fh.truncate(size_gb * GiB)
                _fsync(fh)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return written

    def read_volume(self, volume_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        path = self._vol(volume_id)
        if not path.exists():
            raise BackendError(f"volume {volume_id} has no data file")

        def gen():
            with open(path, "rb") as fh:
                while True:
                    chunk = fh.read(chunk_size)
                    if not chunk:
                        return
                    yield chunk

        return gen()

    def read_snapshot(self, snapshot_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        path = self._snap(snapshot_id)
        if not path.exists():
            raise BackendError(f"snapshot {snapshot_id} has no data file")
        return _read_file(path, chunk_size)

    def read_chunks(self, volume_id, snapshot_id, chunk_size):
        """Holes (SEEK_DATA) are reported as zero chunks without reading them: backing up a
        mostly empty 1 GiB volume reads only its data."""
        path = self._snap(snapshot_id) if snapshot_id else self._vol(volume_id)
        if not path.exists():
            raise BackendError(f"{path.name} has no data file")

        def gen():
            with open(path, "rb") as fh:
                fd = fh.fileno()
                size = os.fstat(fd).st_size
                for start in range(0, size, chunk_size):
                    length = min(chunk_size, size - start)
                    try:
                        data_at = os.lseek(fd, start, os.SEEK_DATA)
                    except OSError:  # ENXIO: only a hole from here on
                        data_at = size
                    if data_at >= start + length:
                        yield length
                        continue
                    fh.seek(start)
                    yield fh.read(length)

        return gen()

    def open_volume(self, volume_id: str) -> BinaryIO:
        return open(self._vol(volume_id), "r+b")

    def _listing(self, kind: str) -> list[dict]:
        return [{"name": p.name, "size_bytes": p.stat().st_size}
                for p in sorted(self.root.glob(f"{kind}-*")) if not p.name.endswith(".tmp")]

    def _adopt(self, kind: str, source_name: str, dest: Path) -> int:
        src = self.root / _safe(source_name)
        if not source_name.startswith(f"{kind}-") or not src.is_file():
            raise BackendError(f"no {kind} named {source_name} in the backend")
        size = src.stat().st_size
        if src != dest:
            os.replace(src, dest)  # the id names the file: adopting is a rename
        gb = max(1, -(-size // GiB))
        if size < gb * GiB:
            with open(dest, "r+b") as fh:
                fh.truncate(gb * GiB)
        return gb

    def list_manageable(self) -> list[dict]:
        return self._listing("volume")

    def manage_existing(self, volume_id: str, source_name: str) -> int:
        return self._adopt("volume", source_name, self._vol(volume_id))

    def list_manageable_snapshots(self) -> list[dict]:
        return self._listing("snapshot")

    def manage_existing_snapshot(self, snapshot_id: str, source_name: str) -> int:
        return self._adopt("snapshot", source_name, self._snap(snapshot_id))

    def initialize_connection(self, volume_id: str, connector: dict) -> dict:
        return {"driver_volume_type": "file",
                "data": {"device_path": str(self._vol(volume_id)), "format": "raw",
                         "volume_id": volume_id, "access_mode": "rw"}}

    # ------------------------------------------------------------------ helpers
    def _copy(self, src: Path, dest: Path, size_gb: int | None) -> str:
        if not src.exists():
            raise BackendError(f"source {src.name} has no data file")
        tmp = _tmp(dest)
        try:
            if shutil.which("cp"):
                subprocess.run(["cp", "--reflink=auto", "--sparse=always", str(src), str(tmp)],
                               check=True, capture_output=True)
            else:  # pragma: no cover - coreutils is everywhere we run
                shutil.copyfile(src, tmp)
            with open(tmp, "r+b") as fh:
                if size_gb is not None and size_gb * GiB > fh.seek(0, os.SEEK_END):
                    fh.truncate(size_gb * GiB)
                _fsync(fh)
            os.replace(tmp, dest)
        except subprocess.CalledProcessError as exc:
            raise BackendError(f"copy failed: {exc.stderr.decode(errors='replace').strip()}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return str(dest)


def _read_file(path: Path, chunk_size: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(chunk_size)
            if not chunk:
                return
            yield chunk


def _safe(ident: str) -> str:
    if not ident or "/" in ident or ident.startswith(".") or "\0" in ident:
        raise BackendError(f"invalid id {ident!r}")
    return ident


def _tmp(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{os.getpid()}.tmp")


def _fsync(fh) -> None:
    fh.flush()
    os.fsync(fh.fileno())
