"""OS-OAUTH1 consumers (`/v3/OS-OAUTH1/consumers`), as Keystone manages them.

A consumer is an id, an optional description, any extra attributes and a secret that
the API returns once, in the answer to its creation. OAuth1 signatures (HMAC-SHA1) need
the secret in clear on the server, so it is encrypted at rest with the credential keys
rather than hashed; `consumer_secret()` gives it back to code that checks signatures.
"""
from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.identity import models as m

_RESERVED = ("id", "secret", "links")


def _keys():
    from pocketstack.identity.delegation import credential_keys

    return credential_keys()


def _check_description(data: dict) -> None:
    desc = data.get("description")
    if desc is not None and not isinstance(desc, str):
        raise BadRequest("Invalid input for field 'description': it must be a string or null.")


def fmt(c: m.OAuthConsumer) -> dict:
    """Everything but links (the API adds them) and never the secret."""
    return {**(c.extra or {}), "id": c.id, "description": c.description}


def get_consumer(sess: Session, consumer_id: str) -> m.OAuthConsumer:
    c = sess.get(m.OAuthConsumer, consumer_id) if consumer_id else None
    if c is None:
        raise NotFound(f"Could not find consumer: {consumer_id}.")
    return c


def list_consumers(sess: Session) -> list[m.OAuthConsumer]:
    return list(sess.execute(select(m.OAuthConsumer).order_by(m.OAuthConsumer.created_at,
                                                              m.OAuthConsumer.id)).scalars())


def create_consumer(sess: Session, data: dict) -> tuple[m.OAuthConsumer, str]:
    """The new consumer and its secret (in clear, to be shown once)."""
    _check_description(data)
    secret = secrets.token_hex(16)
    extra = {k: v for k, v in data.items() if k not in _RESERVED and k != "description"}
    c = m.OAuthConsumer(description=data.get("description"), encrypted_secret=_keys().encrypt(secret.encode()),
                        extra=extra)
    sess.add(c)
    sess.flush()
    return c, secret


def update_consumer(sess: Session, consumer_id: str, data: dict) -> m.OAuthConsumer:
    if not data:
        raise BadRequest("Invalid input for field 'consumer': it must name at least one attribute.")
    if "secret" in data:
        raise BadRequest("Invalid input for field 'secret': a consumer's secret cannot be changed.")
    if "id" in data and data["id"] != consumer_id:
        raise BadRequest("Invalid input for field 'id': it does not match the consumer being updated.")
    _check_description(data)
    c = get_consumer(sess, consumer_id)
    if "description" in data:
        c.description = data["description"]
    extra = {k: v for k, v in data.items() if k not in _RESERVED and k != "description"}
    if extra:
        c.extra = {**(c.extra or {}), **extra}
    sess.flush()
    return c


def delete_consumer(sess: Session, consumer_id: str) -> None:
    sess.delete(get_consumer(sess, consumer_id))
    sess.flush()


def consumer_secret(c: m.OAuthConsumer) -> str:
    return _keys().decrypt(c.encrypted_secret).decode()
