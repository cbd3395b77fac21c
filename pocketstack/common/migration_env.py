"""Shared Alembic environment: each service's `migrations/env.py` calls `run()`.

Only the service's own tables (prefix `<service>_`) are compared or migrated, and its
history is kept in its own version table, so services evolve independently.
"""
from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import create_engine

from pocketstack.common.db import Base, normalize_url


def run() -> None:
    config = context.config
    service = config.attributes.get("service") or config.get_main_option("service")
    importlib.import_module(f"pocketstack.{service}.models")
    prefix = f"{service}_"

    def include_object(obj, name, type_, reflected, compare_to):
        if type_ == "table":
            return name.startswith(prefix)
        return True

    engine = config.attributes.get("engine")
    if engine is None:
        engine = create_engine(normalize_url(config.get_main_option("sqlalchemy.url")))
    with engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=Base.metadata,
            version_table=config.get_main_option("version_table"),
            include_object=include_object,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()
