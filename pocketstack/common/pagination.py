"""limit/marker pagination with `next` links, as Nova, Glance, Cinder and Neutron page.

Service logic returns the sorted rows; `paginate` cuts the page after `marker` and
builds the `next` link from the request URL (keeping every other query parameter).
"""
from __future__ import annotations

from typing import Callable, Sequence
from urllib.parse import urlencode

from pocketstack.common.errors import BadRequest


def parse_limit(raw: str | None, max_limit: int = 1000) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"limit must be an integer, got {raw!r}") from None
    if value < 0:
        raise BadRequest("limit must be >= 0")
    return min(value, max_limit)


def paginate(items: Sequence, *, limit: int | None, marker: str | None,
             key: Callable = lambda x: x["id"]) -> tuple[list, bool]:
    """Return (page, more): the items after `marker`, at most `limit` of them."""
    start = 0
    if marker:
        for i, item in enumerate(items):
            if key(item) == marker:
                start = i + 1
                break
        else:
            raise BadRequest(f"marker {marker} not found")
    page = list(items[start:])
    if limit is None:
        return page, False
    return page[:limit], len(page) > limit


def next_link(base_url: str, query: list[tuple[str, str]], last_id: str) -> str:
    params = [(k, v) for k, v in query if k != "marker"] + [("marker", last_id)]
    return f"{base_url}?{urlencode(params)}"


def offset_page(items: Sequence, *, limit: int | None, marker: str | None, offset: str | None,
                key: Callable = lambda x: x["id"]) -> tuple[list, bool]:
    """Cinder's paging: `marker` then `offset` (a count to skip), then `limit`; a next link
    whenever the page is full (Cinder does not look ahead)."""
    page, _ = paginate(items, limit=None, marker=marker, key=key)
    if offset not in (None, ""):
        try:
            skip = int(offset)
        except ValueError:
            raise BadRequest(f"Invalid value for offset: {offset!r}") from None
        if skip < 0:
            raise BadRequest("offset must be >= 0")
        page = page[skip:]
    if limit is None:
        return page, False
    return page[:limit], limit > 0 and len(page) >= limit
