"""The backup-driver interface: where backup chunks live, and the chunking they all share.

A backup is a sequence of fixed-size chunks of the volume (or snapshot). Each chunk is
named by its index, hashed with SHA-256 and stored as one object under the backup's own
prefix (`backup-<id>/chunk-<index>`), except chunks of zeros, which are only recorded:
a mostly empty 1 GiB volume costs a few objects, not a gigabyte. The manifest (kept in
the backup's `service_metadata` and exported with its record) lists, per chunk, its hash
and the object holding its bytes (and its container when that is not the backup's own).
An incremental backup compares each chunk's hash with
its parent's manifest and stores only the chunks that changed; unchanged ones point at
the parent's (or an older ancestor's) objects, which is why a backup with dependent
incrementals cannot be deleted. A restore reads the chunks back, checks every hash, and
so never writes silently corrupted data into a volume.

Drivers only store, read, list and delete opaque objects (`posix`: files in a directory
tree; `swift`: objects in the object service). Everything else lives here, once.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Iterator

CHUNK_SIZE = 8 << 20
ZERO = "zero"


class BackupDriverError(Exception):
    """The backup store could not do it (missing object, checksum mismatch, I/O error)."""


class BackupDriver:
    """Object storage for backup chunks. `container` is the backup's container (a directory
    or a Swift container); `owner` is the project that owns the backup."""

    name = "base"
    service = "cinder.backup.drivers.base"

    def put(self, owner: str, container: str, name: str, data: bytes) -> None:
        raise NotImplementedError

    def get(self, owner: str, container: str, name: str) -> bytes:
        raise NotImplementedError

    def exists(self, owner: str, container: str, name: str) -> bool:
        raise NotImplementedError

    def delete_prefix(self, owner: str, container: str, prefix: str) -> int:
        """Delete every object under `prefix` (a backup's own objects); returns how many."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared logic
    def backup(self, backup_id: str, owner: str, container: str, data: Iterable[bytes | int],
               parent: dict | None = None) -> dict:
        """Store `data` (the volume's bytes in CHUNK_SIZE pieces, an int for a known-zero
        piece: `VolumeBackend.read_chunks`) and return the manifest. With `parent` (the
        parent's manifest) only chunks whose hash differs are stored."""
        parent_chunks = (parent or {}).get("chunks", [])
        chunks: list[list] = []
        size = 0
        stored = 0
        for index, chunk in enumerate(data):
            if isinstance(chunk, int):  # a hole the backend did not need to read
                size += chunk
                chunks.append([ZERO, None, chunk])
                continue
            size += len(chunk)
            if chunk.count(0) == len(chunk):
                chunks.append([ZERO, None, len(chunk)])
                continue
            digest = hashlib.sha256(chunk).hexdigest()
            if index < len(parent_chunks) and parent_chunks[index][0] == digest \
                    and parent_chunks[index][2] == len(chunk):
                # unchanged: the ancestor's object, named with its container when that differs
                inherited = list(parent_chunks[index][:3])
                where = _container_of(parent, parent_chunks[index])
                chunks.append(inherited + [where] if where != container else inherited)
                continue
            name = f"backup-{backup_id}/chunk-{index:08d}"
            self.put(owner, container, name, chunk)
            stored += 1
            chunks.append([digest, name, len(chunk)])
        return {"version": 1, "chunk_size": CHUNK_SIZE, "size": size, "container": container,
                "owner": owner, "chunks": chunks, "stored": stored}

    def restore(self, manifest: dict) -> Iterator[bytes]:
        """The backed-up bytes, every chunk checked against its SHA-256."""
        owner = manifest["owner"]
        for entry in manifest["chunks"]:
            digest, name, length = entry[:3]
            if digest == ZERO:
                yield bytes(length)
                continue
            data = self.get(owner, _container_of(manifest, entry), name)
            if len(data) != length or hashlib.sha256(data).hexdigest() != digest:
                raise BackupDriverError(f"backup object {name} is corrupt (checksum mismatch)")
            yield data

    def verify(self, manifest: dict) -> None:
        """Every object the manifest names is present (before importing a record)."""
        for entry in manifest.get("chunks", []):
            digest, name = entry[:2]
            if digest != ZERO and not self.exists(manifest["owner"], _container_of(manifest, entry), name):
                raise BackupDriverError(f"backup object {name} is missing")

    def delete(self, backup_id: str, owner: str, container: str) -> int:
        return self.delete_prefix(owner, container, f"backup-{backup_id}/")


def _container_of(manifest: dict, entry: list) -> str:
    """A chunk lives in the manifest's container unless its entry names another (an
    incremental backup in a new container pointing at its parent's objects, as Cinder allows)."""
    return entry[3] if len(entry) > 3 and entry[3] else manifest["container"]
