"""Database engine, sessions and per-service migrations.

Every service owns its tables (named `<service>_<thing>`) and its own Alembic
history (`<service>/migrations`, version table `alembic_version_<service>`), all in
one database by default. SQLite is the default engine; PostgreSQL and MySQL
(`mysql+pymysql://`) work through the same code.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import uuid
from pathlib import Path
from typing import Iterator

from sqlalchemy import (
    DateTime,
    Text,
    TypeDecorator,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATING_SERVICES = ("common", "identity", "image", "compute", "network", "volume")


class Base(DeclarativeBase):
    """Declarative base for every service's models (one MetaData for the whole database)."""


class JSONText(TypeDecorator):
    """JSON stored as text: portable across SQLite, PostgreSQL and MySQL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)

    def process_result_value(self, value, dialect):
        return None if value is None else json.loads(value)


class UTCDateTime(TypeDecorator):
    """Naive UTC datetimes in the database (microseconds kept on MySQL too), aware in Python."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def normalize_url(url: str) -> str:
    """Accept the URLs operators write (`postgresql://`, `mysql://`) and pick our drivers."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("mysql://"):
        return "mysql+pymysql://" + url.split("://", 1)[1]
    return url


class Database:
    """One engine + session factory; services get sessions from here."""

    def __init__(self, url: str):
        self.url = normalize_url(url)
        kwargs: dict = {"future": True}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            # One connection per request thread (up to 40, anyio's default) stays pooled: with
            # SQLAlchemy's default of 5, every busier moment opened and closed connections
            # (plus their PRAGMAs) per request. Idle cost is nil: they open lazily.
            kwargs["pool_size"] = 40
            kwargs["max_overflow"] = 20
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
        if self.url.startswith("mysql"):
            kwargs["connect_args"] = {"charset": "utf8mb4"}
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False, future=True)
        self._local = threading.local()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on any error.

        Nested use in one thread joins the outer transaction, so a service can call
        another service's Python interface inside its own unit of work.
        """
        current = getattr(self._local, "session", None)
        if current is not None:
            yield current
            return
        sess = self._sessions()
        self._local.session = sess
        try:
            yield sess
            sess.commit()
        except BaseException:
            sess.rollback()
            raise
        finally:
            self._local.session = None
            sess.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# ---------------------------------------------------------------------------- migrations
def _package_dir(service: str) -> Path:
    return Path(__file__).resolve().parent.parent / service


def alembic_config(db: Database, service: str):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_package_dir(service) / "migrations"))
    cfg.set_main_option("version_table", f"alembic_version_{service}")
    cfg.attributes["engine"] = db.engine
    cfg.attributes["service"] = service
    return cfg


def head_revision(service: str) -> str | None:
    """The newest revision id of a service, read from the file names (no Alembic import).

    Our migration files are named `<NNNN>_<slug>.py` with revision id `<NNNN>`, so the
    head is the highest number: this keeps `pocketstack up` cheap when nothing changed.
    """
    versions = _package_dir(service) / "migrations" / "versions"
    revs = sorted(p.name.split("_", 1)[0] for p in versions.glob("[0-9]*_*.py"))
    return revs[-1] if revs else None


def current_revision(db: Database, service: str) -> str | None:
    table = f"alembic_version_{service}"
    with db.engine.connect() as conn:
        if not inspect(conn).has_table(table):
            return None
        return conn.execute(text(f"SELECT version_num FROM {table}")).scalar()


def needs_upgrade(db: Database) -> bool:
    return any(current_revision(db, s) != head_revision(s) for s in MIGRATING_SERVICES)


def upgrade(db: Database, services=MIGRATING_SERVICES) -> list[str]:
    """Bring every service's schema to its head; returns the services that changed."""
    from alembic import command

    changed = []
    for service in services:
        if current_revision(db, service) == head_revision(service):
            continue
        command.upgrade(alembic_config(db, service), "head")
        changed.append(service)
    return changed
