"""Tables shared by every service."""
from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.common.db import Base


class Generation(Base):
    """Monotonic counters, one per cache domain (e.g. `identity`).

    A write that can change a cached answer bumps its counter in the same transaction;
    every process compares the counter before trusting its in-memory cache, which keeps
    several stateless controllers coherent without a cache server.
    """

    __tablename__ = "common_generation"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
