"""The `posix` backup driver: chunks as files under a directory (Cinder's posix driver role).

`[backup] backup_posix_path` (default `<state_dir>/backup`), then `<container>/<object>`.
Files are written under a temporary name, fsynced and renamed, so a crash never leaves a
half-written chunk under its real name (a crashed backup's partial chunks are removed
when the backup, repaired to `error`, is deleted). The directory can be an NFS mount
shared by several controllers, as upstream's NFS backup driver does.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from pocketstack.volume.backup_drivers.base import BackupDriver, BackupDriverError


class PosixBackupDriver(BackupDriver):
    name = "posix"
    service = "cinder.backup.drivers.posix"  # Cinder's name: clients check the prefix

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, container: str, name: str) -> Path:
        for part in (container, *name.split("/")):
            if not part or part in (".", "..") or "\0" in part or "\\" in part:
                raise BackupDriverError(f"invalid backup object name {container}/{name}")
        return self.root / container / name

    def put(self, owner, container, name, data):
        path = self._path(container, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BackupDriverError(f"writing {name} failed: {exc.strerror}") from None

    def get(self, owner, container, name):
        try:
            return self._path(container, name).read_bytes()
        except OSError:
            raise BackupDriverError(f"backup object {name} is missing") from None

    def exists(self, owner, container, name):
        return self._path(container, name).is_file()

    def delete_prefix(self, owner, container, prefix):
        directory = self._path(container, prefix.rstrip("/"))
        if not directory.is_dir():
            return 0
        count = sum(1 for _ in directory.iterdir())
        shutil.rmtree(directory, ignore_errors=True)
        return count
