"""Network's tables. Every table name starts with `network_` (the migration env keys on it)."""
from __future__ import annotations

from pocketstack.common.db import Base  # noqa: F401
