"""HTTP `Range` for object GETs: single ranges (206 + Content-Range), several ranges
(206 `multipart/byteranges`), unsatisfiable ones (416), with swob's rules.

Why a module of its own: plain objects (api.py) and large objects (dlo.py / slo.py) answer
ranges the same way, only their byte sources differ (`read(start, stop)` yields the bytes).

swob's rules, which clients of Swift see:
- a header that is not `bytes=...` or has any syntactically bad spec (`5-3`, `-`, `4`, `x-1`)
  is ignored as a whole: 200 with the whole object;
- specs past the end are dropped; none left is 416 with `Content-Range: bytes */<size>`;
  a suffix longer than the object is the whole object; `-0` is dropped;
- "egregious" sets (RFC 7233 6.1) are 416: more than 50 satisfiable ranges, more than 2
  overlapping pairs, or 8 and more ranges not in ascending order;
- overlapping ranges are served as asked (not coalesced), each as its own part;
- a HEAD ignores Range (200 with the whole length), as swob's HEAD does.
One difference: `If-Range` (RFC 7233 3.2) is honoured: when its ETag (or HTTP date) is not
the object's current one the whole object is answered (200); upstream ignores If-Range.
"""
from __future__ import annotations

import email.utils
import math
import secrets
from typing import Callable, Iterable, Iterator

MAX_RANGES = 50
MAX_RANGE_OVERLAPS = 2
MAX_NONASCENDING_RANGES = 8

Spec = tuple[int | None, int | None]


def parse(value: str | None) -> list[Spec] | None:
    """The (first, last) specs of a `Range` header (None for an open side); None when the
    header must be ignored."""
    if not value:
        return None
    value = value.replace(" ", "")
    if not value.lower().startswith("bytes="):
        return None
    specs: list[Spec] = []
    for spec in value[6:].split(","):
        first, sep, last = spec.partition("-")
        if not sep or (first and not first.isdigit()) or (last and not last.isdigit()):
            return None
        start = int(first) if first else None
        end = int(last) if last else None
        if start is None and end is None:
            return None
        if start is not None and end is not None and end < start:
            return None
        specs.append((start, end))
    return specs


def for_length(specs: list[Spec], length: int) -> list[tuple[int, int]]:
    """Half-open [start, stop) byte ranges of an object of `length` bytes; [] = unsatisfiable."""
    out: list[tuple[int, int]] = []
    for start, end in specs:
        if start is None:  # suffix: the last `end` bytes
            if end:
                out.append((max(0, length - end), length))
        elif start < length:
            out.append((start, length if end is None else min(end + 1, length)))
    if len(out) > MAX_RANGES:
        return []
    overlaps = 0
    for i, (s1, e1) in enumerate(out):
        for s2, e2 in out[i + 1:]:
            if s1 < s2 < e1 or s1 < e2 < e1 or s2 < s1 < e2 or s2 < e1 < e2:
                overlaps += 1
                if overlaps > MAX_RANGE_OVERLAPS:
                    return []
    ascending = all(a <= b for a, b in zip(out, out[1:]))
    if not ascending and len(out) >= MAX_NONASCENDING_RANGES:
        return []
    return out


def _if_range_holds(req, etag: str, timestamp: str) -> bool:
    value = req.headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith("W/"):
        return False  # a weak validator never matches (strong comparison)
    if "," not in value and " " not in value:  # an entity tag (an HTTP-date has both)
        return value.strip('"') == etag.strip('"')
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return when is not None and int(when.timestamp()) == math.ceil(float(timestamp))


def select(req, size: int, etag: str, timestamp: str) -> list[tuple[int, int]] | None:
    """The ranges a GET answers: None = the whole object (no/ignored Range, HEAD, If-Range
    not met), [] = 416, else one or more [start, stop)."""
    if req.method != "GET":
        return None
    specs = parse(req.headers.get("range"))
    if specs is None or not _if_range_holds(req, etag, timestamp):
        return None
    ranges = for_length(specs, size)
    if ranges and size == 0:
        return None  # a suffix range of an empty object: the (empty) whole, as swob
    return ranges


def content_range(start: int, stop: int, size: int) -> str:
    return f"bytes {start}-{stop - 1}/{size}"


def multipart(ranges: list[tuple[int, int]], content_type: str, size: int,
              read: Callable[[int, int], Iterable[bytes]]) -> tuple[str, int, Iterator[bytes]]:
    """(Content-Type, Content-Length, body) of a `multipart/byteranges` answer: per range
    `--<boundary>`, its Content-Type and Content-Range, a blank line, the bytes; then
    `--<boundary>--` (swob's layout, so its exact length is known before the first byte)."""
    boundary = secrets.token_hex(16)
    heads = [(f"--{boundary}\r\nContent-Type: {content_type}\r\n"
              f"Content-Range: {content_range(start, stop, size)}\r\n\r\n").encode() for start, stop in ranges]
    tail = f"--{boundary}--".encode()
    length = sum(len(h) + (stop - start) + 2 for h, (start, stop) in zip(heads, ranges)) + len(tail)

    def body() -> Iterator[bytes]:
        for head, (start, stop) in zip(heads, ranges):
            yield head
            yield from read(start, stop)
            yield b"\r\n"
        yield tail
    return f"multipart/byteranges;boundary={boundary}", length, body()
