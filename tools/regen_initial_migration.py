"""Regenerate a not-yet-released service's `0001_initial_<service>_schema.py` from its models.

While a service has never shipped (compute, network, volume, ... in their first issue),
its schema is one initial migration, rewritten from `pocketstack/<service>/models.py`
whenever the models change:

    .venv/bin/python tools/regen_initial_migration.py compute

Once a service's schema has landed on main, add numbered migrations instead (0002_...).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command

from pocketstack.common import db as dbmod

ROOT = Path(__file__).resolve().parent.parent


def main(service: str) -> None:
    versions = ROOT / "pocketstack" / service / "migrations" / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    for old in versions.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        database = dbmod.Database(f"sqlite:///{tmp}/empty.db")
        cfg = dbmod.alembic_config(database, service)
        command.revision(cfg, message=f"initial {service} schema", autogenerate=True, rev_id="0001")
        database.dispose()
    print(f"wrote {next(versions.glob('0001_*.py')).relative_to(ROOT)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: regen_initial_migration.py SERVICE")
    main(sys.argv[1])
