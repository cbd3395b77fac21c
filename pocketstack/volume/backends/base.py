"""The volume-backend interface: what cinder-volume asks of a storage driver.

Every operation is synchronous and idempotent enough to be retried after a crash (the
service keeps the state machine; a backend only moves bytes). Implementations: `file`
(sparse raw files in the state dir, the default) and later `lvm` (a volume group, thin
provisioned). A remote volume agent over the message bus implements the same methods on
another host; `initialize_connection` then returns an iSCSI (or NBD) target instead of a
local path, which is all a QEMU/KVM compute driver needs to plug the disk in.
"""
from __future__ import annotations

from typing import BinaryIO, Iterable, Iterator


class BackendError(Exception):
    """The backend could not do it (no space, missing source, I/O error)."""


class VolumeBackend:
    name = "base"
    storage_protocol = "local"

    def capabilities(self) -> dict:
        """Pool stats as the scheduler and `scheduler-stats/get_pools` report them."""
        raise NotImplementedError

    def create_volume(self, volume_id: str, size_gb: int) -> str:
        """An empty volume; returns its provider location."""
        raise NotImplementedError

    def delete_volume(self, volume_id: str) -> None:
        raise NotImplementedError

    def extend_volume(self, volume_id: str, new_size_gb: int) -> None:
        raise NotImplementedError

    def clone_volume(self, volume_id: str, source_id: str, size_gb: int) -> str:
        raise NotImplementedError

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> str:
        raise NotImplementedError

    def delete_snapshot(self, snapshot_id: str) -> None:
        raise NotImplementedError

    def volume_from_snapshot(self, volume_id: str, snapshot_id: str, size_gb: int) -> str:
        raise NotImplementedError

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        raise NotImplementedError

    def write_volume(self, volume_id: str, chunks: Iterable[bytes], size_gb: int) -> int:
        """Fill a new volume from a byte stream (image data, a backup); returns bytes written."""
        raise NotImplementedError

    def read_volume(self, volume_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The volume's bytes (upload to image, backups)."""
        raise NotImplementedError

    def read_snapshot(self, snapshot_id: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """A snapshot's bytes (backups of a snapshot)."""
        raise NotImplementedError

    def read_chunks(self, volume_id: str | None, snapshot_id: str | None,
                    chunk_size: int) -> Iterator[bytes | int]:
        """The volume's (or snapshot's) bytes in pieces of exactly `chunk_size` (the last
        one shorter); a piece known to be all zeros may be given as its length (an int),
        so backups of sparse volumes skip reading holes. This default reads everything."""
        data = self.read_snapshot(snapshot_id) if snapshot_id else self.read_volume(volume_id)
        buf = bytearray()
        for piece in data:
            buf += piece
            while len(buf) >= chunk_size:
                yield bytes(buf[:chunk_size])
                del buf[:chunk_size]
        if buf:
            yield bytes(buf)

    def open_volume(self, volume_id: str) -> BinaryIO:
        raise NotImplementedError

    # -- manage / unmanage (admin adoption of storage the service does not know yet) --
    def list_manageable(self) -> list[dict]:
        """Volumes present in the backend: `[{"name": "volume-<id>", "size_bytes": N}]`."""
        raise NotImplementedError

    def manage_existing(self, volume_id: str, source_name: str) -> int:
        """Adopt the backend volume `source_name` as `volume_id`; returns its size in GiB."""
        raise NotImplementedError

    def unmanage(self, volume_id: str) -> None:
        """Forget the volume, keeping its data (it stays listed by `list_manageable`)."""
        return None

    def list_manageable_snapshots(self) -> list[dict]:
        """Snapshots present in the backend: `[{"name": "snapshot-<id>", "size_bytes": N}]`."""
        raise NotImplementedError

    def manage_existing_snapshot(self, snapshot_id: str, source_name: str) -> int:
        """Adopt the backend snapshot `source_name` as `snapshot_id`; returns its size in GiB."""
        raise NotImplementedError

    def volume_exists(self, volume_id: str) -> bool:
        raise NotImplementedError

    def initialize_connection(self, volume_id: str, connector: dict) -> dict:
        """How a host reaches the volume: `{"driver_volume_type": ..., "data": {...}}`."""
        raise NotImplementedError

    def terminate_connection(self, volume_id: str, connector: dict) -> None:
        return None
