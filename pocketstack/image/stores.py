"""Where image data lives: the `Store` interface and the filesystem store.

A store takes a stream of bytes and gives back an opaque location (a URL of its own
scheme), plus the size and the md5 / sha512 digests it computed on the way. The API
layer only ever talks to this interface, so an object-store backend (Glance-on-Swift,
as in the install guide) plugs in by implementing the same five methods and being
registered in `STORE_TYPES`.

Writes are crash-safe: data goes to a temporary file that is fsynced and renamed
into place only once complete (and verified), so a crash or a failed upload never
leaves a half-written image behind under a real location.
"""
from __future__ import annotations

import hashlib
import os
import queue
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

CHUNK = 1 << 20  # 1 MiB: large enough to amortise per-chunk overheads, small in memory


class StoreError(Exception):
    """The store could not complete the operation."""


class SizeLimitExceeded(StoreError):
    """More bytes arrived than the caller allowed (quota or size cap)."""

    def __init__(self, limit: int):
        super().__init__(f"the data is larger than the {limit} bytes allowed")
        self.limit = limit


class StoreFull(StoreError):
    """The backend has no room left."""


class LocationNotFound(StoreError):
    pass


# Called with a local path to the complete data before it is committed; raising aborts
# the write (the format inspector runs here).
Verifier = Callable[[str], None]


class Store:
    """The interface every image store implements."""

    id = "store"
    description = ""
    read_only = False

    def add(self, image_id: str, stream: Iterable[bytes], size_limit: int | None = None,
            verify: Verifier | None = None) -> tuple[str, int, str, str]:
        """Store the bytes of `stream`; returns (location, size, md5 hex, sha512 hex).

        Raises SizeLimitExceeded as soon as more than `size_limit` bytes arrive; on any
        failure nothing is left stored."""
        raise NotImplementedError

    def get(self, location: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The data (or the `length` bytes from `offset`), in chunks."""
        raise NotImplementedError

    def size(self, location: str) -> int:
        raise NotImplementedError

    def delete(self, location: str) -> None:
        """Remove the data; a location already gone is not an error."""
        raise NotImplementedError

    def info(self) -> dict:
        out = {"id": self.id, "description": self.description}
        if self.read_only:
            out["read-only"] = "true"
        return out


class _FanOut:
    """Each chunk of a stream handed to several consumers (md5, sha512, the file write),
    each running in its own thread behind a small bounded queue. hashlib and file writes
    release the GIL on large buffers, so an upload costs about the time of its slowest
    stage instead of the sum of all of them, in memory bounded by the queues."""

    _STOP = object()

    def __init__(self, consumers: list[Callable[[bytes], Any]], depth: int = 4):
        self._errors: list[BaseException] = []
        self._queues = [queue.Queue(maxsize=depth) for _ in consumers]
        self._threads = [threading.Thread(target=self._run, args=(fn, q), daemon=True, name="image-io")
                         for fn, q in zip(consumers, self._queues)]
        for t in self._threads:
            t.start()

    def _run(self, fn, q) -> None:
        failed = False
        while True:
            data = q.get()
            if data is self._STOP:
                return
            if failed:
                continue  # keep draining so the producer never blocks on a dead consumer
            try:
                fn(data)
            except BaseException as exc:
                self._errors.append(exc)
                failed = True

    def put(self, data: bytes) -> None:
        if self._errors:
            raise self._errors[0]
        for q in self._queues:
            q.put(data)

    def close(self) -> None:
        for q in self._queues:
            q.put(self._STOP)
        for t in self._threads:
            t.join()
        if self._errors:
            raise self._errors[0]


def _write_all(out: BinaryIO) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = out.write(view)  # an unbuffered file may take less than all of it
            if written is None:
                raise StoreError("the image file is not writable")
            view = view[written:]

    return write


def copy_stream(stream: Iterable[bytes], out: BinaryIO, size_limit: int | None) -> tuple[int, str, str]:
    """Write `stream` to `out` while hashing it; returns (size, md5, sha512)."""
    md5, sha512 = hashlib.md5(usedforsecurity=False), hashlib.sha512()
    fan = _FanOut([md5.update, sha512.update, _write_all(out)])
    size = 0
    try:
        for chunk in stream:
            if not chunk:
                continue
            size += len(chunk)
            if size_limit is not None and size > size_limit:
                raise SizeLimitExceeded(size_limit)
            fan.put(chunk)
    except BaseException:
        try:
            fan.close()
        except BaseException:
            pass
        raise
    fan.close()
    return size, md5.hexdigest(), sha512.hexdigest()


def read_file(path: str | os.PathLike, offset: int = 0, length: int | None = None,
              chunk: int = CHUNK) -> Iterator[bytes]:
    """The file's bytes in chunks. The file is opened now, not on the first read, so a
    download already started survives the image being deleted meanwhile."""
    fh = open(path, "rb", buffering=0)

    def chunks():
        with fh:
            if offset:
                fh.seek(offset)
            left = length
            while left is None or left > 0:
                data = fh.read(chunk if left is None else min(chunk, left))
                if not data:
                    return
                if left is not None:
                    left -= len(data)
                yield data

    return chunks()


class FilesystemStore(Store):
    """Images as files under one directory (`<state_dir>/images` by default)."""

    description = "Images on the local filesystem"
    scheme = "file://"
    STALE_AFTER = 6 * 3600  # an upload's temp file untouched this long was left by a crash

    def __init__(self, root: str | os.PathLike, store_id: str = "file", description: str | None = None):
        self.id = store_id
        if description:
            self.description = description
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".incoming"
        self._tmp.mkdir(exist_ok=True)
        # Leftovers of a crash mid-upload are never part of any image. (Only old ones: another
        # process on this state dir may be receiving an upload right now.)
        import time

        for stale in self._tmp.iterdir():
            try:
                if time.time() - stale.stat().st_mtime > self.STALE_AFTER:
                    stale.unlink()
            except OSError:
                pass

    def _path(self, location: str) -> Path:
        if not location.startswith(self.scheme):
            raise LocationNotFound(f"not a location of this store: {location}")
        path = Path(location[len(self.scheme):]).resolve()
        if path.parent != self.root:
            raise LocationNotFound(f"not a location of this store: {location}")
        return path

    def location_for(self, image_id: str) -> str:
        return self.scheme + str(self.root / image_id)

    def add(self, image_id, stream, size_limit=None, verify=None):
        final = self.root / image_id
        tmp = self._tmp / f"{image_id}.{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb", buffering=0) as out:
                size, md5, sha512 = copy_stream(stream, out, size_limit)
                os.fsync(out.fileno())
            if verify is not None:
                verify(str(tmp))
            os.replace(tmp, final)
            _fsync_dir(self.root)
        except OSError as exc:
            _unlink(tmp)
            if exc.errno == 28:  # ENOSPC
                raise StoreFull("there is no space left in the image store") from exc
            raise StoreError(f"cannot write the image data: {exc.strerror or exc}") from exc
        except BaseException:
            _unlink(tmp)
            raise
        return self.location_for(image_id), size, md5, sha512

    def get(self, location, offset=0, length=None):
        try:
            return read_file(self._path(location), offset, length)
        except FileNotFoundError:
            raise LocationNotFound(f"image data is missing at {location}") from None

    def size(self, location):
        try:
            return self._path(location).stat().st_size
        except FileNotFoundError:
            raise LocationNotFound(f"image data is missing at {location}") from None

    def delete(self, location):
        try:
            _unlink(self._path(location))
        except LocationNotFound:
            pass

    def local_path(self, location: str) -> str:
        return str(self._path(location))


class StagingArea:
    """Glance's staging area for the interoperable import (`PUT /stage`): plain files,
    written with the same temp-file + fsync + rename discipline as the store."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._store = FilesystemStore(self.root, "staging")

    def path(self, image_id: str) -> Path:
        return self.root / image_id

    def add(self, image_id: str, stream: Iterable[bytes], size_limit: int | None = None):
        return self._store.add(image_id, stream, size_limit)

    def exists(self, image_id: str) -> bool:
        return self.path(image_id).exists()

    def delete(self, image_id: str) -> None:
        _unlink(self.path(image_id))


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _filesystem_store(cfg, store_id: str, section: str) -> FilesystemStore:
    """`[glance_store]` (single store) or `[<backend id>]` (multi-store):
    `filesystem_store_datadir`, default `<state_dir>/images` (single) or `.../images/<id>`."""
    default = cfg.state_dir / "images" if section == "glance_store" else cfg.state_dir / "images" / store_id
    return FilesystemStore(cfg.get(section, "filesystem_store_datadir", default="") or default, store_id,
                           cfg.get(section, "store_description", default="") or None)


def _swift_store(cfg, store_id: str, section: str) -> Store:
    from pocketstack.image.swift_store import swift_store

    return swift_store(cfg, store_id, section)


# store type -> factory(config, store id, config section)
STORE_TYPES: dict[str, Callable[..., Store]] = {
    "file": _filesystem_store,
    "swift": _swift_store,  # Glance-on-Swift: the object service (swift_store.py)
}
