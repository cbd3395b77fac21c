"""limit/marker pagination and next links."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketstack.common.errors import BadRequest
from pocketstack.common.pagination import next_link, paginate, parse_limit

ITEMS = [{"id": f"id-{i:02d}", "name": f"n{i}"} for i in range(10)]


# ---------------------------------------------------------------------------- parse_limit
@pytest.mark.parametrize("raw,expected", [(None, None), ("", None), ("0", 0), ("1", 1), ("25", 25),
                                          ("1000", 1000), ("1001", 1000), ("999999999999", 1000)])
def test_parse_limit(raw, expected):
    assert parse_limit(raw) == expected


def test_parse_limit_custom_maximum():
    assert parse_limit("50", max_limit=20) == 20
    assert parse_limit("5", max_limit=20) == 5


@pytest.mark.parametrize("raw", ["-1", "abc", "1.5", "1e3", "0x10", "ten", " "])
def test_parse_limit_rejects_junk_with_400(raw):
    with pytest.raises(BadRequest) as exc:
        parse_limit(raw)
    assert exc.value.code == 400


# ---------------------------------------------------------------------------- paginate
def test_no_limit_no_marker_is_everything():
    page, more = paginate(ITEMS, limit=None, marker=None)
    assert page == ITEMS and more is False


def test_limit_cuts_and_says_there_is_more():
    page, more = paginate(ITEMS, limit=3, marker=None)
    assert [i["id"] for i in page] == ["id-00", "id-01", "id-02"]
    assert more is True


def test_marker_starts_after_the_marked_item():
    page, more = paginate(ITEMS, limit=3, marker="id-02")
    assert [i["id"] for i in page] == ["id-03", "id-04", "id-05"]
    assert more is True


def test_last_page_says_no_more():
    page, more = paginate(ITEMS, limit=3, marker="id-06")
    assert [i["id"] for i in page] == ["id-07", "id-08", "id-09"]
    assert more is False   # exactly the remainder: no empty extra page
    page, more = paginate(ITEMS, limit=5, marker="id-07")
    assert [i["id"] for i in page] == ["id-08", "id-09"] and more is False


def test_marker_on_last_item_is_an_empty_page():
    assert paginate(ITEMS, limit=3, marker="id-09") == ([], False)
    assert paginate(ITEMS, limit=None, marker="id-09") == ([], False)


def test_limit_zero():
    page, more = paginate(ITEMS, limit=0, marker=None)
    assert page == [] and more is True
    assert paginate([], limit=0, marker=None) == ([], False)


def test_unknown_marker_is_400():
    with pytest.raises(BadRequest) as exc:
        paginate(ITEMS, limit=3, marker="nope")
    assert exc.value.code == 400
    assert "nope" in exc.value.message


def test_custom_key():
    page, _ = paginate(ITEMS, limit=2, marker="n4", key=lambda x: x["name"])
    assert [i["name"] for i in page] == ["n5", "n6"]


def test_empty_list():
    assert paginate([], limit=5, marker=None) == ([], False)


# ---------------------------------------------------------------------------- next links
def test_next_link_keeps_other_parameters_and_replaces_the_marker():
    url = next_link("http://h:5000/compute/v2.1/servers/detail",
                    [("limit", "2"), ("marker", "old"), ("name", "a b&c"), ("status", "ACTIVE")], "id-03")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "http://h:5000/compute/v2.1/servers/detail"
    assert parse_qsl(parts.query) == [("limit", "2"), ("name", "a b&c"), ("status", "ACTIVE"), ("marker", "id-03")]


def test_next_link_without_query():
    assert next_link("http://h/v2/images", [], "x") == "http://h/v2/images?marker=x"


def test_next_link_quotes_the_marker():
    url = next_link("http://h/x", [("limit", "1")], "a/b c?")
    assert dict(parse_qsl(urlsplit(url).query))["marker"] == "a/b c?"


def test_next_link_keeps_repeated_parameters():
    url = next_link("http://h/x", [("tag", "a"), ("tag", "b"), ("marker", "m1"), ("marker", "m2")], "z")
    assert parse_qsl(urlsplit(url).query) == [("tag", "a"), ("tag", "b"), ("marker", "z")]


# ---------------------------------------------------------------------------- walking all pages
def walk(items, limit):
    """Follow next links as a client would; returns every page."""
    pages, marker = [], None
    query = [("limit", str(limit))]
    while True:
        page, more = paginate(items, limit=parse_limit(str(limit)), marker=marker)
        pages.append(page)
        if not more:
            return pages
        link = next_link("http://h/things", query, page[-1]["id"])
        marker = dict(parse_qsl(urlsplit(link).query))["marker"]
        assert len(pages) <= len(items) + 1, "pagination does not terminate"


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 40), limit=st.integers(1, 15))
def test_walking_next_links_yields_every_item_once_in_order(n, limit):
    items = [{"id": f"{i:03d}"} for i in range(n)]
    pages = walk(items, limit)
    assert [i for p in pages for i in p] == items
    assert all(0 < len(p) <= limit for p in pages if items)
    assert all(len(p) == limit for p in pages[:-1])
