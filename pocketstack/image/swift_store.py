"""The `swift` image store: image data kept in pocketstack's own object service.

Glance-on-Swift as the guide sets it up (`[glance_store] default_store = swift`), in
single-tenant mode: every image is one object in the container `[glance_store]
swift_store_container` (default `glance`) of a service account (`[glance_store]
swift_store_account`, default `AUTH_glance`, which no user project owns, so raw image data
is reachable only through the image API). The object service is called in-process through
its storage engine (`pocketstack.object.service.get_storage()`: quorum writes over the
ring's replicas, checksummed reads, the replicator), never through its files.

The format inspector needs the complete data as a local file before anything is
committed, so an upload is spooled to a temporary file (hashed on the way in), verified,
then written to the object service; the temporary file is always removed.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator

from pocketstack.image.stores import (LocationNotFound, Store, StoreError, StoreFull, copy_stream,
                                      read_file)

SCHEME = "swift+pocketstack://"


class SwiftStore(Store):
    description = "Images in the object storage service"

    def __init__(self, spool_dir: Path, store_id: str = "swift", account: str = "AUTH_glance",
                 container: str = "glance", description: str | None = None):
        self.id = store_id
        if description:
            self.description = description
        self.account, self.container = account, container
        self.spool = spool_dir
        self.spool.mkdir(parents=True, exist_ok=True)

    def _storage(self):
        from pocketstack.object.service import get_storage

        try:
            return get_storage()
        except RuntimeError:
            raise StoreError("the object service is not enabled in this cloud") from None

    def location_for(self, image_id: str) -> str:
        return f"{SCHEME}{self.account}/{self.container}/{image_id}"

    def _object(self, location: str) -> str:
        prefix = f"{SCHEME}{self.account}/{self.container}/"
        name = location[len(prefix):] if location.startswith(prefix) else ""
        if not name or "/" in name:
            raise LocationNotFound(f"not a location of this store: {location}")
        return name

    def add(self, image_id, stream, size_limit=None, verify=None):
        from pocketstack.object import storage as st

        fd, tmp = tempfile.mkstemp(dir=self.spool, prefix=f".{image_id}.")
        try:
            with os.fdopen(fd, "wb", buffering=0) as out:
                size, md5, sha512 = copy_stream(stream, out, size_limit)
            if verify is not None:
                verify(tmp)
            store = self._storage()
            if store.container_info(self.account, self.container) is None:
                store.create_container(self.account, self.container, {})
            store.put_object(self.account, self.container, image_id, read_file(tmp),
                             {"content_type": "application/octet-stream"}, expected_etag=md5,
                             expected_length=size)
        except OSError as exc:
            if exc.errno == 28:  # ENOSPC
                raise StoreFull("there is no space left for the image data") from exc
            raise StoreError(f"cannot write the image data: {exc.strerror or exc}") from exc
        except st.StorageError as exc:
            raise StoreError(f"the object service could not store the image data: {exc}") from exc
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        return self.location_for(image_id), size, md5, sha512

    def _head(self, location: str):
        from pocketstack.object import storage as st

        try:
            return self._storage().head_object(self.account, self.container, self._object(location),
                                               verify_max=st.GET_VERIFY_MAX)
        except (st.StorageError, ValueError, OSError):
            raise LocationNotFound(f"image data is missing at {location}") from None

    def get(self, location, offset=0, length=None) -> Iterator[bytes]:
        meta, path = self._head(location)
        end = None if length is None else min(meta["size"], offset + length)
        return self._storage().iter_object(path, meta, offset, end)

    def size(self, location):
        return self._head(location)[0]["size"]

    def delete(self, location):
        from pocketstack.object import storage as st

        try:
            self._storage().delete_object(self.account, self.container, self._object(location))
        except (st.StorageError, LocationNotFound):
            pass


def swift_store(cfg, store_id: str, section: str) -> SwiftStore:
    """`[glance_store]` (single store) or `[<backend id>]` (multi-store): `swift_store_container`,
    `swift_store_account`, `store_description`."""
    return SwiftStore(cfg.state_dir / "images" / "spool", store_id,
                      cfg.get(section, "swift_store_account", default="") or "AUTH_glance",
                      cfg.get(section, "swift_store_container", default="") or "glance",
                      cfg.get(section, "store_description", default="") or None)
