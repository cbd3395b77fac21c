"""Password hashing with bcrypt (cost from `[identity] password_hash_rounds`, 12 as upstream).

bcrypt reads at most 72 bytes; longer passwords are first reduced with SHA-256 so that
two long passwords sharing a prefix never collide.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

import bcrypt


def _prepare(password: str) -> bytes:
    raw = password.encode("utf-8")
    if len(raw) > 72:
        raw = base64.b64encode(hashlib.sha256(raw).digest())
    return raw


def hash_password(password: str, rounds: int = 12) -> str:
    rounds = min(max(rounds, 4), 31)
    return bcrypt.hashpw(_prepare(password), bcrypt.gensalt(rounds)).decode()


def check_password(password: str, hashed: str | None) -> bool:
    if not hashed or password is None:
        return False
    try:
        return bcrypt.checkpw(_prepare(password), hashed.encode())
    except ValueError:
        return False


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
