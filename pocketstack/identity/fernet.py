"""Fernet key repository and token payloads, with Keystone's rotation scheme.

Keys live in `<state_dir>/fernet-keys/` as files named by integers: `0` is the staged
key (next primary), the highest number is the primary (encrypts), the others are
secondary (still decrypt). `rotate()` promotes the staged key, stages a new one and
prunes to `max_active_keys`, so tokens issued before a rotation stay valid.
"""
from __future__ import annotations

import base64
import os
import struct
import uuid
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class KeyRepository:
    def __init__(self, path: Path, max_active_keys: int = 3):
        self.path = path
        self.max_active_keys = max(2, max_active_keys)
        self._fernet: MultiFernet | None = None
        self._mtime = None

    # -- setup / rotation -----------------------------------------------------
    def _keys(self) -> dict[int, bytes]:
        keys = {}
        if self.path.is_dir():
            for f in self.path.iterdir():
                if f.name.isdigit():
                    keys[int(f.name)] = f.read_bytes().strip()
        return keys

    def _write(self, index: int, key: bytes) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path / f".{index}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path / str(index))

    def setup(self) -> bool:
        """Create the staged and the first primary key if there are none. True if created."""
        if self._keys():
            return False
        self._write(0, Fernet.generate_key())
        self.rotate()
        return True

    def rotate(self) -> int:
        """Staged -> primary, new staged key, prune the oldest. Returns the new primary index."""
        keys = self._keys()
        if 0 not in keys:
            self._write(0, Fernet.generate_key())
            keys = self._keys()
        new_primary = max(keys) + 1
        self._write(new_primary, keys[0])
        self._write(0, Fernet.generate_key())
        keys = self._keys()
        for index in sorted(k for k in keys if k != 0)[:-(self.max_active_keys - 1)]:
            (self.path / str(index)).unlink()
        self._fernet = None
        return new_primary

    # -- use ------------------------------------------------------------------
    def fernet(self) -> MultiFernet:
        """All keys, primary first; reloaded when the repository changes on disk."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if self._fernet is None or mtime != self._mtime:
            keys = self._keys()
            if not keys:
                raise RuntimeError(f"no fernet keys in {self.path}; run 'pocketstack init'")
            order = sorted((k for k in keys if k != 0), reverse=True) + [0]
            self._fernet = MultiFernet([Fernet(keys[k]) for k in order if k in keys])
            self._mtime = mtime
        return self._fernet

    def encrypt(self, data: bytes) -> str:
        return self.fernet().encrypt(data).decode().rstrip("=")

    def decrypt(self, token: str, ttl: int | None = None) -> bytes:
        """Raises InvalidToken for anything not made by us (or too old for `ttl`)."""
        token = token.strip()
        token += "=" * (-len(token) % 4)
        return self.fernet().decrypt(token.encode(), ttl=ttl)


__all__ = ["KeyRepository", "InvalidToken", "pack_id", "unpack_id"]


def pack_id(value: str | None) -> bytes:
    """uuid hex ids as 16 bytes, anything else (e.g. 'default') length-prefixed."""
    if value is None:
        return b"\x00"
    if len(value) == 32:
        try:
            return b"\x01" + uuid.UUID(hex=value).bytes
        except ValueError:
            pass
    raw = value.encode()
    return b"\x02" + struct.pack(">H", len(raw)) + raw


def unpack_id(buf: bytes, pos: int) -> tuple[str | None, int]:
    kind = buf[pos]
    if kind == 0:
        return None, pos + 1
    if kind == 1:
        return uuid.UUID(bytes=buf[pos + 1:pos + 17]).hex, pos + 17
    (length,) = struct.unpack(">H", buf[pos + 1:pos + 3])
    return buf[pos + 3:pos + 3 + length].decode(), pos + 3 + length


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
