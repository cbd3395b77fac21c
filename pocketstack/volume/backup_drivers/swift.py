"""The `swift` backup driver: chunks as objects in pocketstack's own object service.

Objects go to the container (default `volumebackups`) in the account of the project that
owns the backup (`AUTH_<project_id>`), as Cinder's Swift driver does with the user's
token, so the owner sees (and is billed for) them with `openstack container list`. We call
the object service's storage engine in-process (`pocketstack.object.service.get_storage()`:
quorum writes, checksummed reads, replication), never its files.
"""
from __future__ import annotations

from pocketstack.volume.backup_drivers.base import BackupDriver, BackupDriverError


class SwiftBackupDriver(BackupDriver):
    name = "swift"
    service = "cinder.backup.drivers.swift"  # Cinder's name: clients check the prefix

    def _storage(self):
        from pocketstack.object.service import get_storage

        try:
            return get_storage()
        except RuntimeError:
            raise BackupDriverError("the object service is not enabled in this cloud") from None

    @staticmethod
    def _account(owner: str) -> str:
        return f"AUTH_{owner}"

    def put(self, owner, container, name, data):
        from pocketstack.object import storage as st

        store = self._storage()
        account = self._account(owner)
        try:
            if store.container_info(account, container) is None:
                store.create_container(account, container, {})
            store.put_object(account, container, name, [data], {"content_type": "application/octet-stream"})
        except st.StorageError as exc:
            raise BackupDriverError(f"storing {name} failed: {exc}") from None

    def get(self, owner, container, name):
        from pocketstack.object import storage as st

        store = self._storage()
        try:
            meta, path = store.head_object(self._account(owner), container, name, verify_max=st.GET_VERIFY_MAX)
            return b"".join(store.iter_object(path, meta))
        except (st.StorageError, ValueError, OSError):
            raise BackupDriverError(f"backup object {name} is missing") from None

    def exists(self, owner, container, name):
        from pocketstack.object import storage as st

        try:
            self._storage().head_object(self._account(owner), container, name)
            return True
        except (st.StorageError, ValueError, OSError):
            return False

    def delete_prefix(self, owner, container, prefix):
        from pocketstack.object import storage as st

        store = self._storage()
        account = self._account(owner)
        if store.container_info(account, container) is None:
            return 0
        count = 0
        while True:
            listed = store.list_objects(account, container, prefix=prefix, limit=1000)
            if not listed:
                return count
            for item in listed:
                try:
                    store.delete_object(account, container, item["name"])
                    count += 1
                except st.NotFoundError:
                    pass
