"""Key pairs: per-user public keys injected into servers (ssh) or certificates (x509).

The public Python interface: `get_keypair(user_id, name)` -> `KeyPairInfo` or 404 (server
create converts it to its 400 "Invalid key_name provided."). Generated private keys are
returned once to the caller and never stored or logged.

Fingerprints follow Nova: ssh keys -> MD5 of the key blob in colon-separated hex;
x509 certificates -> SHA-1 of the DER certificate in colon-separated hex.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, Conflict, NotFound
from pocketstack.common.events import emit
from pocketstack.common.runtime import current
from pocketstack.compute.models import KeyPair


@dataclass(frozen=True)
class KeyPairInfo:
    id: int
    user_id: str
    name: str
    type: str
    public_key: str
    fingerprint: str
    created_at: dt.datetime


class KeypairNotFound(NotFound):
    def __init__(self, user_id: str, name: str):
        super().__init__(f"Keypair {name} not found for user {user_id}")


def _session():
    return current().db.session()


def _info(row: KeyPair) -> KeyPairInfo:
    return KeyPairInfo(row.id, row.user_id, row.name, row.type, row.public_key, row.fingerprint, row.created_at)


def _colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def ssh_fingerprint(public_key: str) -> str:
    """MD5 colon-hex of the key blob, after checking the key parses (400 if it does not)."""
    try:
        parts = public_key.strip().split()
        if len(parts) < 2:
            raise ValueError("not an OpenSSH public key")
        serialization.load_ssh_public_key(" ".join(parts[:2]).encode())
        blob = base64.b64decode(parts[1], validate=True)
    except (ValueError, binascii.Error, UnicodeError, TypeError):
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    return _colon_hex(hashlib.md5(blob, usedforsecurity=False).digest())


def x509_fingerprint(pem: str) -> str:
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, UnicodeError, TypeError):
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    return _colon_hex(cert.fingerprint(hashes.SHA1()))


def generate_ssh() -> tuple[str, str]:
    """(private key PEM, OpenSSH public key) of a fresh RSA-2048 key, as Nova generates."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public + " Generated-by-Nova"


def generate_x509(user_id: str) -> tuple[str, str]:
    """(private key PEM, self-signed certificate PEM) for x509 key pairs."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id or "pocketstack")])
    now = utcnow()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return private, cert.public_bytes(serialization.Encoding.PEM).decode()


def get_keypair(user_id: str, name: str) -> KeyPairInfo:
    with _session() as sess:
        row = sess.scalar(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name))
        if row is None:
            raise KeypairNotFound(user_id, name)
        return _info(row)


def list_keypairs(user_id: str, *, limit: int | None = None, marker: str | None = None) -> list[KeyPairInfo]:
    """A user's key pairs ordered by name (Nova pages on the name, 2.35)."""
    with _session() as sess:
        q = select(KeyPair).where(KeyPair.user_id == user_id).order_by(KeyPair.name)
        if marker is not None:
            if sess.scalar(select(KeyPair.id).where(KeyPair.user_id == user_id, KeyPair.name == marker)) is None:
                raise BadRequest(f"marker [{marker}] not found")
            q = q.where(KeyPair.name > marker)
        if limit is not None:
            q = q.limit(limit)
        return [_info(r) for r in sess.scalars(q)]


def count(user_id: str) -> int:
    with _session() as sess:
        return sess.scalar(select(func.count()).select_from(KeyPair).where(KeyPair.user_id == user_id)) or 0


def create_keypair(ctx, user_id: str, name: str, key_type: str = "ssh",
                   public_key: str | None = None) -> tuple[KeyPairInfo, str | None]:
    """Import `public_key`, or generate one; returns (keypair, private key or None)."""
    from pocketstack.compute import quotas

    private = None
    if public_key is None:
        private, public_key = generate_x509(user_id) if key_type == "x509" else generate_ssh()
    fingerprint = x509_fingerprint(public_key) if key_type == "x509" else ssh_fingerprint(public_key)
    try:
        with _session() as sess:
            quotas.check_keypairs(ctx, user_id, 1)
            if sess.scalar(select(KeyPair.id).where(KeyPair.user_id == user_id, KeyPair.name == name)):
                raise Conflict(f"Key pair '{name}' already exists.")
            row = KeyPair(user_id=user_id, name=name, type=key_type, public_key=public_key,
                          fingerprint=fingerprint, created_at=utcnow())
            sess.add(row)
            sess.flush()
            info = _info(row)
    except IntegrityError:
        raise Conflict(f"Key pair '{name}' already exists.") from None
    emit("compute.keypair.create", {"user_id": user_id, "key_name": name, "type": key_type,
                                    "fingerprint": fingerprint}, context=ctx)
    return info, private


def delete_keypair(ctx, user_id: str, name: str) -> None:
    with _session() as sess:
        row = sess.scalar(select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name))
        if row is None:
            raise KeypairNotFound(user_id, name)
        sess.delete(row)
    emit("compute.keypair.delete", {"user_id": user_id, "key_name": name}, context=ctx)
