"""Microversion negotiation: OpenStack-API-Version, legacy headers, `latest`, 406 outside the range."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from pocketstack.common.errors import BadRequest, json_error_response
from pocketstack.common.microversions import NotAcceptable, Version, negotiate, response_headers

MIN, MAX = "2.1", "2.90"
LEGACY = "X-OpenStack-Nova-API-Version"


def nova(headers: dict | list | None = None, legacy: str | None = LEGACY) -> Version:
    if isinstance(headers, list):
        h = Headers(raw=[(k.lower().encode(), v.encode()) for k, v in headers])
    else:
        h = Headers(headers or {})
    return negotiate(h, "compute", MIN, MAX, legacy_header=legacy)


# ---------------------------------------------------------------------------- Version
def test_version_parse_and_order():
    assert Version.parse("2.1") == Version(2, 1)
    assert Version.parse(" 3.27 ") == Version(3, 27)
    # numeric, not lexical, ordering: 2.10 > 2.9
    assert Version.parse("2.10") > Version.parse("2.9")
    assert Version(2, 9) < Version(3, 0) <= Version(3, 0)
    assert str(Version(2, 53)) == "2.53"
    assert sorted([Version(2, 10), Version(2, 2), Version(1, 99)]) == [Version(1, 99), Version(2, 2), Version(2, 10)]


@pytest.mark.parametrize("text", ["", "2", "2.", ".1", "2.1.1", "v2.1", "2,1", "a.b", "latest", "-2.1", None])
def test_version_parse_rejects_junk_with_400(text):
    with pytest.raises(BadRequest) as exc:
        Version.parse(text)
    assert exc.value.code == 400


# ---------------------------------------------------------------------------- negotiation
def test_no_header_gets_the_minimum():
    assert nova() == Version(2, 1)
    assert nova({"Accept": "application/json"}) == Version(2, 1)


def test_openstack_api_version_header():
    assert nova({"OpenStack-API-Version": "compute 2.53"}) == Version(2, 53)
    assert nova({"openstack-api-version": "compute 2.1"}) == Version(2, 1)
    assert nova({"OPENSTACK-API-VERSION": "compute   2.90"}) == Version(2, 90)


def test_service_type_is_case_insensitive_and_other_services_are_ignored():
    assert nova({"OpenStack-API-Version": "Compute 2.5"}) == Version(2, 5)
    assert nova({"OpenStack-API-Version": "volume 3.60"}) == Version(2, 1)
    assert nova({"OpenStack-API-Version": "volume 3.60, compute 2.12"}) == Version(2, 12)
    assert nova({"OpenStack-API-Version": "compute 2.12,volume 3.60"}) == Version(2, 12)


def test_repeated_headers_are_all_read():
    assert nova([("OpenStack-API-Version", "volume 3.60"), ("OpenStack-API-Version", "compute 2.30")]) \
        == Version(2, 30)


@pytest.mark.parametrize("value", ["compute latest", "compute LATEST", "compute Latest "])
def test_latest_is_the_maximum(value):
    assert nova({"OpenStack-API-Version": value}) == Version(2, 90)


def test_legacy_header():
    assert nova({LEGACY: "2.40"}) == Version(2, 40)
    assert nova({LEGACY.lower(): "latest"}) == Version(2, 90)
    # ignored when the service has no legacy header
    assert nova({LEGACY: "2.40"}, legacy=None) == Version(2, 1)


def test_new_header_wins_over_legacy_header():
    assert nova({"OpenStack-API-Version": "compute 2.20", LEGACY: "2.40"}) == Version(2, 20)
    # ... but only when it names this service
    assert nova({"OpenStack-API-Version": "volume 3.1", LEGACY: "2.40"}) == Version(2, 40)


@pytest.mark.parametrize("value", ["compute 2.0", "compute 2.91", "compute 1.99", "compute 3.0", "compute 20.1"])
def test_out_of_range_is_406(value):
    with pytest.raises(NotAcceptable) as exc:
        nova({"OpenStack-API-Version": value})
    err = exc.value
    assert err.code == 406
    assert "2.1" in err.message and "2.90" in err.message
    # rendered as a proper error body
    resp = json_error_response(err)
    assert resp.status_code == 406
    assert json.loads(resp.body) == {"error": {"code": 406, "message": err.message, "title": "Not Acceptable"}}


def test_legacy_out_of_range_is_406():
    with pytest.raises(NotAcceptable):
        nova({LEGACY: "2.99"})


@pytest.mark.parametrize("value", ["compute 2", "compute two.one", "compute 2.1.3"])
def test_malformed_requested_version_is_400(value):
    with pytest.raises(BadRequest) as exc:
        nova({"OpenStack-API-Version": value})
    assert exc.value.code == 400


def test_plain_dict_headers_work_too():
    assert negotiate({"openstack-api-version": "compute 2.3"}, "compute", MIN, MAX) == Version(2, 3)
    assert negotiate({}, "compute", MIN, MAX) == Version(2, 1)


def test_response_headers():
    assert response_headers("compute", Version(2, 53)) == {
        "OpenStack-API-Version": "compute 2.53", "Vary": "OpenStack-API-Version"}
    h = response_headers("compute", Version(2, 1), LEGACY)
    assert h["OpenStack-API-Version"] == "compute 2.1"
    assert h[LEGACY] == "2.1"
    assert h["Vary"] == f"OpenStack-API-Version, {LEGACY}"


@settings(max_examples=200, deadline=None)
@given(major=st.integers(0, 5), minor=st.integers(0, 200))
def test_negotiation_property(major, minor):
    """Any well-formed version is served as asked inside [min, max] and refused with 406 outside."""
    wanted = Version(major, minor)
    try:
        got = nova({"OpenStack-API-Version": f"compute {major}.{minor}"})
    except NotAcceptable:
        assert not Version(2, 1) <= wanted <= Version(2, 90)
    else:
        assert got == wanted and Version(2, 1) <= got <= Version(2, 90)
