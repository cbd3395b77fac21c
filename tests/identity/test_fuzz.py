"""Schema-driven fuzzing of the Identity API (hypothesis) against a running cloud.

For each group of endpoints a valid body is generated from a schema of what the endpoint
accepts, then one or two places in it are mutated (a value swapped for junk: wrong types,
nested containers, huge and odd strings (lone surrogates, NUL, format strings), nulls; a
key dropped or a random key added), so that the junk reaches deep into the handlers.
Some bodies are junk from the top, or not JSON at all; headers and tokens are fuzzed too.
Whatever comes in, the answer is never a 5xx, and every error carries Keystone's
`{"error": {"code", "message", "title"}}` body with `code` equal to the HTTP status.
"""
from __future__ import annotations

import copy
import json
import os
import uuid
from types import SimpleNamespace
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# ~120 examples per endpoint group keep the module well under 90 s on a busy 2-core machine;
# POCKETSTACK_FUZZ_EXAMPLES=2000 fuzzes harder (e.g. nightly).
FUZZ = settings(max_examples=int(os.environ.get("POCKETSTACK_FUZZ_EXAMPLES", "120")), deadline=None,
                database=None, print_blob=True, suppress_health_check=list(HealthCheck))

# ---------------------------------------------------------------------------- junk values
ODD_STRINGS = [
    "", " ", "\t\n", "x" * 65, "x" * 256, "é" * 300, "\u0000", "a\u0000b", "\ud800", "x\udfffy",
    "\ud83d\ude00" * 3, "😀" * 70, "%(user_id)s", "%s%s%n", "{0}", "' OR 1=1 --", "\"; DROP TABLE x; --",
    "../../etc/passwd", "default", "<<null>>", "\\", "a,b", "a/b", "true", "null", "NaN", "-1", "0",
    "1" * 5000, "y" * 70000, "\u202e\u200b\ufeff", "<script>alert(1)</script>", "admin", "RegionOne",
    "public", "http://", "ftp://x", "http://example.com:99999/path",
]
odd_text = st.sampled_from(range(len(ODD_STRINGS))).map(lambda i: ODD_STRINGS[i])  # short reprs
text = st.one_of(st.text(max_size=40), odd_text)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.sampled_from([0, 1, -1, 2 ** 63, -(2 ** 64)]),
    st.floats(allow_nan=True, allow_infinity=True), text,
)
junk = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(text, children, max_size=4)),
    max_leaves=10,
)


def maybe(valid):
    """Mostly the plausible value, sometimes junk."""
    return st.one_of(valid, valid, junk)


def obj(fields: dict, extra: bool = True):
    """An object with any subset of `fields` (each maybe junk), plus random extra keys."""
    base = st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in fields.items()})
    if not extra:
        return base
    return st.tuples(base, st.dictionaries(text, junk, max_size=3)).map(lambda t: {**t[1], **t[0]})


def envelope(key: str, inner):
    """`{key: inner}` most of the time; sometimes the wrong wrapper or plain junk."""
    return st.one_of(
        inner.map(lambda v: {key: v}), inner.map(lambda v: {key: v}), inner.map(lambda v: {key: v}),
        st.tuples(inner, st.dictionaries(text, junk, max_size=2)).map(lambda t: {key: t[0], **t[1]}),
        junk.map(lambda v: {key: v}),
        junk,
    )


# Raw bodies that are not JSON objects at all (or not even JSON).
RAW_BODIES = [
    b"", b"{", b"}", b"null", b"[]", b"\"str\"", b"{\"a\":", b"\xff\xfe\x00", b"\x00" * 10,
    b"[" * 5000 + b"]" * 5000, b"{\"a\":" * 3000 + b"1" + b"}" * 3000, b"[" * 60000,
    b"1" * 5000, b"{\"user\": {\"name\": 1" + b"0" * 5000 + b"}}", b"NaN", b"Infinity",
    b"{\"user\": {\"name\": \"\\ud800\"}}", b"{\"project\": {\"name\": \"\\udc00x\"}}",
    "{\"user\": {\"name\": \"ok\"}}".encode("utf-16"), b"\xef\xbb\xbf{}", b"{\"a\": 1, \"a\": 2}",
]


def _slots(doc) -> list[tuple]:
    """Every (container, key) of a JSON document."""
    out, stack = [], [doc]
    while stack:
        container = stack.pop()
        items = container.items() if isinstance(container, dict) else \
            enumerate(container) if isinstance(container, list) else ()
        for key, value in list(items):
            out.append((container, key))
            if isinstance(value, (dict, list)):
                stack.append(value)
    return out


# What a mutation puts in place of a value: the classic wrong types first, then anything.
nasty = st.one_of(st.sampled_from([[], {}, ["x"], {"a": 1}, None, 0, -1, True, False, "", 1.5]), junk) \
    .map(copy.deepcopy)  # never hand out (and later mutate) the same [] or {} twice


@st.composite
def mutated(draw, valid, focus: tuple = ()):
    """A valid document with 1-2 mutations (a value made junk, a key dropped or one added),
    all inside the part of it at `focus` (a path of keys; that part itself included)."""
    doc = copy.deepcopy(draw(valid))
    for _ in range(draw(st.integers(1, 2), label="mutations")):
        parent, last = None, None
        node = doc
        try:
            for k in focus:
                parent, last, node = node, k, node[k]
        except (KeyError, IndexError, TypeError):
            break
        slots = ([(parent, last)] if parent is not None else []) + _slots(node)
        if not slots:
            break
        container, key = slots[draw(st.integers(0, len(slots) - 1), label="slot")]
        action = draw(st.sampled_from(["junk", "junk", "junk", "drop", "add"]), label="action")
        if action == "drop":
            del container[key]
        elif action == "add" and isinstance(container[key], dict):
            container[key][draw(text)] = draw(nasty)
        else:
            container[key] = draw(nasty)
    return doc


def body_strategy(key: str, valid, fields: dict, focus: tuple = ()):
    """Mostly a mutated valid `{key: {...}}`; sometimes junk from the top, or not JSON at all."""
    doc = valid.map(lambda v: {key: v})
    return st.one_of(
        doc.map(lambda v: ("json", v)),
        mutated(doc, focus).map(lambda v: ("json", v)),
        mutated(doc, focus).map(lambda v: ("json", v)),
        mutated(doc, focus).map(lambda v: ("json", v)),
        envelope(key, obj(fields)).map(lambda v: ("json", v)),
        st.sampled_from(RAW_BODIES).map(lambda v: ("raw", v)),
    )


def encode(body) -> bytes:
    kind, value = body
    if kind == "raw":
        return value
    return json.dumps(value).encode()  # \u-escapes keep lone surrogates sendable


# ---------------------------------------------------------------------------- headers
TOKEN_KINDS = ["admin"] * 8 + ["none", "garbage", "mangled", "user", "empty"]
CONTENT_TYPES = ["application/json", "application/json; charset=utf-8", "text/plain", "",
                 "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "*/*"]
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=60)


def hv(value: str) -> bytes:
    """A header value HTTP allows (latin-1, no surrounding whitespace)."""
    return value.strip(" \t").encode("latin-1") or b"x"


@st.composite
def headers_strategy(draw, fz):
    kind = draw(st.sampled_from(TOKEN_KINDS))
    h: dict[str, bytes] = {}
    if kind == "admin":
        h["X-Auth-Token"] = fz.admin_token.encode()
    elif kind == "garbage":
        h["X-Auth-Token"] = hv(draw(header_text))
    elif kind == "mangled":
        t = fz.admin_token
        i = draw(st.integers(0, len(t) - 1))
        h["X-Auth-Token"] = (t[:i] + ("A" if t[i] != "A" else "B") + t[i + 1:]).encode()
    elif kind == "user":
        h["X-Auth-Token"] = fz.user_token.encode()
    elif kind == "empty":
        h["X-Auth-Token"] = b""
    h["Content-Type"] = draw(st.sampled_from(CONTENT_TYPES)).encode()
    if draw(st.booleans()):
        h["OpenStack-API-Version"] = hv(draw(st.one_of(st.just("identity 3.14"), header_text)))
    if draw(st.integers(0, 4)) == 0:
        h[draw(st.sampled_from(["X-Subject-Token", "X-Forwarded-For", "Accept", "X-Openstack-Request-Id",
                                "Accept-Encoding", "X-Auth-Project-Id"]))] = hv(draw(header_text))
    return h


# ---------------------------------------------------------------------------- checking
def check(resp: httpx.Response, method: str, url: str, body: bytes | None = None) -> None:
    where = f"{method} {url} -> {resp.status_code}\nrequest body: {(body or b'')[:300]!r}\n" \
            f"response: {resp.text[:500]}"
    assert resp.status_code < 500, where
    if resp.status_code >= 400 and method != "HEAD":
        try:
            data = resp.json()
        except ValueError:
            pytest.fail("error response is not JSON: " + where)
        assert isinstance(data, dict) and isinstance(data.get("error"), dict), where
        err = data["error"]
        assert {"code", "message", "title"} <= set(err), where
        assert err["code"] == resp.status_code, where
        assert isinstance(err["message"], str) and isinstance(err["title"], str) and err["title"], where
    elif resp.status_code < 300 and resp.content and method != "HEAD":
        resp.json()  # success bodies parse


def q(value: str) -> str:
    """URL-quote for a path segment or query item; lone surrogates go out as raw bytes, and
    huge values are cut (URLs longer than a few KB are refused by the client itself)."""
    return quote(value[:1000], safe="", errors="surrogatepass")


def send(fz, method: str, path: str, body=None, headers=None, params=None) -> httpx.Response:
    content = encode(body) if body is not None else None
    if isinstance(params, list):
        params = "&".join(f"{q(k)}={q(v)}" for k, v in params)
    url = path + (f"?{params}" if params else "")
    resp = fz.http.request(method, url, content=content, headers=headers)
    check(resp, method, url, content)
    return resp


# ---------------------------------------------------------------------------- the cloud
class Fuzz(SimpleNamespace):
    def __repr__(self):  # keeps hypothesis' failure reports readable
        return "fz"


@pytest.fixture(scope="module")
def fz(cloud):
    """Sacrificial resources the fuzzer may modify (never the admin's own)."""
    http = httpx.Client(base_url=cloud.url, timeout=60)
    admin_token = cloud.token()
    auth = {"X-Auth-Token": admin_token}

    def create(path, key, body):
        r = http.post(path, json={key: body}, headers=auth)
        assert r.status_code == 201, r.text
        return r.json()[key]["id"]

    tag = uuid.uuid4().hex[:6]
    ns = Fuzz(http=http, admin_token=admin_token, cloud=cloud)
    ns.domain = create("/v3/domains", "domain", {"name": f"fz-dom-{tag}"})
    immutable = {"options": {"immutable": True}}
    ns.imm_domain = create("/v3/domains", "domain", {"name": f"fz-idom-{tag}", **immutable})
    ns.imm_project = create("/v3/projects", "project", {"name": f"fz-iproj-{tag}", **immutable})
    ns.imm_role = create("/v3/roles", "role", {"name": f"fz-irole-{tag}", **immutable})
    ns.project_name = f"fz-proj-{tag}"
    ns.project = create("/v3/projects", "project", {"name": ns.project_name, "domain_id": "default"})
    ns.child = create("/v3/projects", "project", {"name": f"fz-child-{tag}", "parent_id": ns.project})
    ns.user_name, ns.user_password = f"fz-user-{tag}", "fz-pass-1"
    ns.user = create("/v3/users", "user", {"name": ns.user_name, "password": ns.user_password,
                                           "domain_id": "default", "default_project_id": ns.project})
    ns.user2 = create("/v3/users", "user", {"name": f"fz-user2-{tag}", "password": "fz-pass-2"})
    ns.group = create("/v3/groups", "group", {"name": f"fz-group-{tag}"})
    ns.role = create("/v3/roles", "role", {"name": f"fz-role-{tag}"})
    ns.role2 = create("/v3/roles", "role", {"name": f"fz-role2-{tag}"})
    ns.domain_role = create("/v3/roles", "role", {"name": f"fz-drole-{tag}", "domain_id": ns.domain})
    ns.region = create("/v3/regions", "region", {"id": f"fz-region-{tag}"})
    ns.service = create("/v3/services", "service", {"type": f"fz-{tag}", "name": "fz"})
    ns.endpoint = create("/v3/endpoints", "endpoint", {"service_id": ns.service, "interface": "public",
                                                      "url": "http://fz.example.com", "region_id": ns.region})
    roles = {r["name"]: r["id"] for r in http.get("/v3/roles", headers=auth).json()["roles"]}
    ns.member_role = roles["member"]
    assert http.put(f"/v3/projects/{ns.project}/users/{ns.user}/roles/{ns.member_role}",
                    headers=auth).status_code == 204
    ns.user_token = cloud.token(ns.user_name, ns.user_password, ns.project_name)
    ns.admin_user = http.get("/v3/auth/tokens", headers={**auth, "X-Subject-Token": admin_token}) \
        .json()["token"]["user"]["id"]
    # Ids the fuzzer may write to: never the admin user or the roles it logs in with, or a
    # random PATCH could lock the admin out and the teardown check would fail by chance.
    ns.ids = [ns.domain, ns.project, ns.child, ns.user, ns.user2, ns.group, ns.role, ns.role2, ns.domain_role,
              ns.region, ns.service, ns.endpoint, "default", "RegionOne"]
    yield ns
    # the cloud still answers and the admin still gets in after all that
    assert http.get("/v3", headers=auth).status_code == 200
    cloud.token()
    http.close()


def any_id(fz):
    return st.one_of(st.sampled_from(fz.ids), st.sampled_from(fz.ids), text.filter(bool),
                     st.uuids().map(lambda u: u.hex))


def path_id(fz):
    return any_id(fz).map(q)


# ---------------------------------------------------------------------------- schemas
names = st.one_of(st.text(min_size=1, max_size=20).map(lambda s: f"fz-{s}"), text)
fresh = st.uuids().map(lambda u: f"fz-{u.hex[:12]}")
bools = st.booleans()
tags = st.lists(text, max_size=5)
str_or_none = st.one_of(st.none(), text)
plain = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)
good_tags = st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"),
                                           exclude_characters=",/"), min_size=1, max_size=10), max_size=4)


def valid(required: dict, optional: dict):
    return st.fixed_dictionaries(required, optional=optional)


# Each resource: (valid-document strategy, field strategies for junk-from-the-top documents)
def user_schema(fz):
    good = valid({"name": fresh}, {
        "domain_id": st.sampled_from(["default", fz.domain]), "enabled": bools,
        "password": st.sampled_from(["pw-1", "x" * 80, "é" * 10, ""]), "default_project_id": st.just(fz.project),
        "description": plain, "email": plain,
        "options": st.fixed_dictionaries({}, optional={
            "ignore_password_expiry": bools, "lock_password": bools, "ignore_user_inactivity": bools,
            "multi_factor_auth_enabled": bools, "multi_factor_auth_rules": st.just([["password", "totp"]])})})
    fields = {"name": names, "domain_id": any_id(fz), "enabled": bools, "password": text,
              "default_project_id": any_id(fz), "description": text, "email": text,
              "options": st.dictionaries(st.sampled_from(["ignore_password_expiry", "lock_password",
                                                          "multi_factor_auth_rules", "bogus"]), junk, max_size=3),
              "federated": junk}
    return good, fields


def project_schema(fz):
    good = valid({"name": fresh}, {
        "domain_id": st.sampled_from(["default", fz.domain]), "parent_id": st.sampled_from([fz.project, fz.child]),
        "enabled": bools, "is_domain": bools, "description": plain, "tags": good_tags,
        "options": st.fixed_dictionaries({}, optional={"immutable": bools})})
    fields = {"name": names, "domain_id": any_id(fz), "parent_id": any_id(fz), "enabled": bools,
              "is_domain": bools, "description": str_or_none, "tags": tags,
              "options": st.dictionaries(st.sampled_from(["immutable", "bogus"]), junk, max_size=2)}
    return good, fields


def domain_schema(fz):
    good = valid({"name": fresh}, {
        "enabled": bools, "description": plain, "tags": good_tags,
        "explicit_domain_id": st.uuids().map(lambda u: u.hex),
        "options": st.fixed_dictionaries({}, optional={"immutable": bools})})
    fields = {"name": names, "enabled": bools, "description": str_or_none, "tags": tags,
              "explicit_domain_id": st.one_of(st.uuids().map(lambda u: u.hex), text),
              "options": st.dictionaries(st.sampled_from(["immutable", "bogus"]), junk, max_size=2)}
    return good, fields


def group_schema(fz):
    good = valid({"name": fresh}, {"domain_id": st.sampled_from(["default", fz.domain]), "description": plain})
    return good, {"name": names, "domain_id": any_id(fz), "description": str_or_none}


def role_schema(fz):
    good = valid({"name": fresh}, {"domain_id": st.sampled_from([None, fz.domain]), "description": plain,
                                   "options": st.fixed_dictionaries({}, optional={"immutable": bools})})
    fields = {"name": names, "domain_id": st.one_of(st.none(), any_id(fz)), "description": str_or_none,
              "options": st.dictionaries(st.sampled_from(["immutable", "bogus"]), junk, max_size=2)}
    return good, fields


def region_schema(fz):
    good = valid({}, {"id": fresh, "description": plain, "parent_region_id": st.sampled_from([fz.region, None])})
    return good, {"id": text, "description": str_or_none, "parent_region_id": st.one_of(st.none(), any_id(fz))}


def service_schema(fz):
    good = valid({"type": fresh}, {"name": plain, "enabled": bools, "description": plain})
    return good, {"type": names, "name": text, "enabled": bools, "description": text}


def endpoint_schema(fz):
    good = valid({"service_id": st.just(fz.service), "interface": st.sampled_from(["public", "internal", "admin"]),
                  "url": st.sampled_from(["http://e.example.com/v1", "https://x:8443/$(project_id)s"])},
                 {"region_id": st.just(fz.region), "region": st.just(fz.region), "enabled": bools})
    fields = {"service_id": any_id(fz), "interface": st.sampled_from(["public", "internal", "admin", "x"]),
              "url": st.one_of(st.just("http://e.example.com/v1"), text), "region_id": any_id(fz),
              "region": any_id(fz), "enabled": bools}
    return good, fields


# ---------------------------------------------------------------------------- resource writes
def _write_test(fz, data, key: str, collection: str, victim: str, schema):
    good, fields = schema
    method, path = data.draw(st.sampled_from([
        ("POST", f"/v3/{collection}"), ("POST", f"/v3/{collection}"),
        ("PATCH", f"/v3/{collection}/{q(victim)}"), ("PATCH", f"/v3/{collection}/{q(victim)}"),
        ("PATCH", None),
    ]), label="endpoint")
    if path is None:
        path = f"/v3/{collection}/" + data.draw(path_id(fz), label="id")
    body = data.draw(body_strategy(key, good, fields), label="body")
    headers = data.draw(headers_strategy(fz), label="headers")
    send(fz, method, path, body, headers)


@FUZZ
@given(data=st.data())
def test_fuzz_users(fz, data):
    _write_test(fz, data, "user", "users", fz.user2, user_schema(fz))


@FUZZ
@given(data=st.data())
def test_fuzz_projects(fz, data):
    victim = data.draw(st.sampled_from([fz.project, fz.child, fz.imm_project]))
    _write_test(fz, data, "project", "projects", victim, project_schema(fz))


@FUZZ
@given(data=st.data())
def test_fuzz_domains(fz, data):
    victim = data.draw(st.sampled_from([fz.domain, fz.imm_domain]))
    _write_test(fz, data, "domain", "domains", victim, domain_schema(fz))


@FUZZ
@given(data=st.data())
def test_fuzz_groups(fz, data):
    _write_test(fz, data, "group", "groups", fz.group, group_schema(fz))


@FUZZ
@given(data=st.data())
def test_fuzz_roles(fz, data):
    victim = data.draw(st.sampled_from([fz.role, fz.role2, fz.domain_role, fz.imm_role]))
    _write_test(fz, data, "role", "roles", victim, role_schema(fz))


@FUZZ
@given(data=st.data())
def test_fuzz_regions(fz, data):
    if data.draw(st.integers(0, 3)) == 0:
        good, fields = region_schema(fz)
        path = "/v3/regions/" + data.draw(st.one_of(fresh, path_id(fz)))
        send(fz, "PUT", path, data.draw(body_strategy("region", good, fields)), data.draw(headers_strategy(fz)))
    else:
        _write_test(fz, data, "region", "regions", fz.region, region_schema(fz))


@FUZZ
@given(data=st.data())
def test_fuzz_services(fz, data):
    _write_test(fz, data, "service", "services", fz.service, service_schema(fz))


@FUZZ
@given(data=st.data())
def test_fuzz_endpoints(fz, data):
    _write_test(fz, data, "endpoint", "endpoints", fz.endpoint, endpoint_schema(fz))


# ---------------------------------------------------------------------------- auth
def auth_schema(fz):
    users = [{"name": "admin", "domain": {"id": "default"}, "password": fz.cloud.admin_password},
             {"id": fz.user, "password": fz.user_password},
             {"name": fz.user_name, "domain": {"name": "Default"}, "password": fz.user_password}]
    identities = st.one_of(
        st.sampled_from(users).map(lambda u: {"methods": ["password"], "password": {"user": u}}),
        st.just({"methods": ["token"], "token": {"id": fz.user_token}}),
        st.sampled_from(users).map(lambda u: {"methods": ["password", "token"], "password": {"user": u},
                                              "token": {"id": fz.user_token}}),
        st.just({"methods": ["application_credential"],
                 "application_credential": {"id": uuid.uuid4().hex, "secret": "s"}}),
        st.just({"methods": ["application_credential"],
                 "application_credential": {"name": "ac", "user": {"id": fz.user}, "secret": "s"}}),
    )
    scopes = st.sampled_from([
        {"project": {"name": "admin", "domain": {"id": "default"}}}, {"project": {"id": fz.project}},
        {"project": {"name": fz.project_name, "domain": {"name": "Default"}}},
        {"domain": {"id": "default"}}, {"domain": {"name": "Default"}}, {"system": {"all": True}},
        {"OS-TRUST:trust": {"id": uuid.uuid4().hex}}, "unscoped",
    ])
    fields = {"identity": junk, "scope": st.one_of(scopes, junk)}
    return identities, scopes, fields


@FUZZ
@given(data=st.data())
def test_fuzz_auth_identity(fz, data):
    """Junk in the identity part (methods, users, passwords, tokens, application credentials)."""
    identities, scopes, fields = auth_schema(fz)
    good = st.one_of(st.fixed_dictionaries({"identity": identities}),
                     st.fixed_dictionaries({"identity": identities, "scope": scopes}))
    body = data.draw(body_strategy("auth", good, fields, focus=("auth", "identity")), label="body")
    headers = data.draw(headers_strategy(fz), label="headers")
    send(fz, "POST", "/v3/auth/tokens", body, headers)


@FUZZ
@given(data=st.data())
def test_fuzz_auth_scope_and_validation(fz, data):
    """A good identity with junk in the scope; then validate, check or revoke a junk subject."""
    identities, scopes, fields = auth_schema(fz)
    good = st.fixed_dictionaries({"identity": identities, "scope": scopes})
    body = data.draw(body_strategy("auth", good, fields, focus=("auth", "scope")), label="body")
    headers = data.draw(headers_strategy(fz), label="headers")
    query = data.draw(st.sampled_from([None, "nocatalog", "nocatalog=false", "allow_expired=1"]))
    send(fz, "POST", "/v3/auth/tokens", body, headers, params=query)
    # validate / check / revoke a random subject (never the admin's own token)
    method = data.draw(st.sampled_from(["GET", "HEAD", "DELETE"]))
    subject = data.draw(st.one_of(header_text, st.just(fz.user_token[:-3] + "abc")), label="subject")
    headers = {**data.draw(headers_strategy(fz)), "X-Subject-Token": hv(subject)}
    send(fz, method, "/v3/auth/tokens", None, headers, params=query)


@FUZZ
@given(data=st.data())
def test_fuzz_password_change(fz, data):
    uid = data.draw(st.one_of(st.just(fz.user2), path_id(fz)), label="user")
    good = st.fixed_dictionaries({"original_password": st.just("fz-pass-2"), "password": st.just("fz-pass-2")})
    fields = {"original_password": st.one_of(st.just("fz-pass-2"), text), "password": text}
    body = data.draw(body_strategy("user", good, fields), label="body")
    headers = data.draw(headers_strategy(fz), label="headers")
    send(fz, "POST", f"/v3/users/{uid}/password", body, headers)


# ---------------------------------------------------------------------------- grants
@FUZZ
@given(data=st.data())
def test_fuzz_grants(fz, data):
    def pick(*choices):
        return data.draw(st.one_of(st.sampled_from(choices), st.sampled_from(choices), path_id(fz)))

    template = data.draw(st.sampled_from([
        "/v3/projects/{p}/users/{u}/roles/{r}", "/v3/projects/{p}/groups/{g}/roles/{r}",
        "/v3/domains/{d}/users/{u}/roles/{r}", "/v3/domains/{d}/groups/{g}/roles/{r}",
        "/v3/OS-INHERIT/domains/{d}/users/{u}/roles/{r}/inherited_to_projects",
        "/v3/OS-INHERIT/projects/{p}/groups/{g}/roles/{r}/inherited_to_projects",
        "/v3/system/users/{u}/roles/{r}", "/v3/system/groups/{g}/roles/{r}",
        "/v3/groups/{g}/users/{u}", "/v3/roles/{r}/implies/{r2}",
    ]), label="template")
    path = template.format(p=pick(fz.project, fz.child), u=pick(fz.user, fz.user2), g=pick(fz.group),
                           d=pick(fz.domain, "default"), r=pick(fz.role, fz.role2, fz.domain_role, fz.member_role),
                           r2=pick(fz.role, fz.role2, fz.domain_role))
    method = data.draw(st.sampled_from(["PUT", "PUT", "PUT", "GET", "HEAD"]))
    body = data.draw(st.one_of(st.none(), body_strategy("role", st.just({"id": fz.role}), {"id": any_id(fz)})),
                     label="body")
    send(fz, method, path, body, data.draw(headers_strategy(fz), label="headers"))


# ---------------------------------------------------------------------------- reads
LIST_PATHS = ["/v3/users", "/v3/projects", "/v3/domains", "/v3/groups", "/v3/roles", "/v3/regions",
              "/v3/services", "/v3/endpoints", "/v3/role_assignments", "/v3/role_inferences",
              "/v3/auth/projects", "/v3/auth/domains", "/v3/auth/system", "/v3/auth/catalog", "/v3/policies",
              "/v3/OS-EP-FILTER/endpoint_groups", "/v3", "/v3/auth/tokens", "/v3/credentials",
              "/v3/OS-TRUST/trusts", "/v3/OS-OAUTH1/consumers", "/v3/domains/config/default"]
ITEM_PATHS = ["/v3/users/{}", "/v3/users/{}/groups", "/v3/users/{}/projects", "/v3/projects/{}",
              "/v3/projects/{}/tags", "/v3/domains/{}", "/v3/groups/{}", "/v3/groups/{}/users", "/v3/roles/{}",
              "/v3/roles/{}/implies", "/v3/regions/{}", "/v3/services/{}", "/v3/endpoints/{}",
              "/v3/system/users/{}/roles", "/v3/projects/{}/users/{}/roles", "/v3/domains/{}/groups/{}/roles",
              "/v3/OS-EP-FILTER/projects/{}/endpoints", "/v3/{}", "/v3/users/{}/{}",
              "/v3/users/{}/application_credentials", "/v3/users/{}/access_rules", "/v3/users/{}/credentials/OS-EC2",
              "/v3/OS-TRUST/trusts/{}", "/v3/domains/{}/config", "/v3/credentials/{}"]
QUERY_KEYS = ["name", "enabled", "domain_id", "parent_id", "is_domain", "id", "limit", "marker", "sort_key",
              "sort_dir", "name__contains", "name__icontains", "name__startswith", "name__bogus", "tags",
              "tags-any", "not-tags", "not-tags-any", "parents_as_list", "subtree_as_list", "parents_as_ids",
              "subtree_as_ids", "effective", "include_names", "include_subtree", "user.id", "group.id",
              "role.id", "scope.project.id", "scope.domain.id", "scope.system", "scope.OS-INHERIT:inherited_to",
              "nocatalog", "allow_expired", "type", "interface", "service_id", "region_id", "parent_region_id",
              "cascade", "password_expires_at", "user_id", "trustor_user_id", "trustee_user_id"]


@FUZZ
@given(data=st.data())
def test_fuzz_reads(fz, data):
    if data.draw(st.booleans()):
        path = data.draw(st.sampled_from(LIST_PATHS), label="path")
    else:
        template = data.draw(st.sampled_from(ITEM_PATHS), label="template")
        path = template.format(*[data.draw(path_id(fz)) for _ in range(template.count("{}"))])
    query = data.draw(st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_KEYS), text),
                                         st.one_of(st.sampled_from(fz.ids), text)), max_size=5), label="query")
    headers = data.draw(headers_strategy(fz), label="headers")
    if path == "/v3/auth/tokens":
        headers["X-Subject-Token"] = data.draw(st.sampled_from([fz.user_token, fz.admin_token, "junk"])).encode()
    method = data.draw(st.sampled_from(["GET", "GET", "HEAD"]))
    send(fz, method, path, None, headers, params=query)


# ---------------------------------------------------------------------------- systematic sweep
# Random generation rarely hits one particular deep field with one particular wrong type, so
# every field of a full valid document is also swapped, one at a time, for each of these.
SWEEP_VALUES = [None, [], {"a": 1}, 0, True, ""]  # (huge strings and floats: the random part has them)
DROP = object()


def single_mutations(doc, focus: tuple = ()):
    """`doc` with exactly one value (inside `focus`) replaced or dropped, every way."""
    node = doc
    for k in focus:
        node = node[k]
    n_slots = len(_slots(node)) + (1 if focus else 0)
    for i in range(n_slots):
        for value in SWEEP_VALUES + [DROP]:
            out = copy.deepcopy(doc)
            node, parent, last = out, None, None
            for k in focus:
                parent, last, node = node, k, node[k]
            slots = ([(parent, last)] if focus else []) + _slots(node)
            container, key = slots[i]
            if value is DROP:
                del container[key]
            else:
                container[key] = copy.deepcopy(value)
            yield out


def _sweep_docs(fz):
    fresh_name = lambda: f"fz-{uuid.uuid4().hex[:12]}"  # noqa: E731
    resources = [
        ("users", "user", fz.user2, {"name": fresh_name(), "domain_id": "default", "enabled": True,
                                     "password": "pw-1", "default_project_id": fz.project, "description": "d",
                                     "email": "e@example.com",
                                     "options": {"ignore_password_expiry": True,
                                                 "multi_factor_auth_rules": [["password"]]}}),
        ("projects", "project", fz.child, {"name": fresh_name(), "domain_id": "default", "parent_id": fz.project,
                                           "enabled": True, "is_domain": False, "description": "d",
                                           "tags": ["a"], "options": {"immutable": False}}),
        ("domains", "domain", fz.domain, {"name": fresh_name(), "enabled": True, "description": "d",
                                          "tags": ["a"], "explicit_domain_id": uuid.uuid4().hex,
                                          "options": {"immutable": False}}),
        ("groups", "group", fz.group, {"name": fresh_name(), "domain_id": "default", "description": "d"}),
        ("roles", "role", fz.role2, {"name": fresh_name(), "domain_id": fz.domain, "description": "d",
                                     "options": {"immutable": False}}),
        ("regions", "region", fz.region, {"id": fresh_name(), "description": "d", "parent_region_id": fz.region}),
        ("services", "service", fz.service, {"type": fresh_name(), "name": "n", "enabled": True,
                                             "description": "d"}),
        ("endpoints", "endpoint", fz.endpoint, {"service_id": fz.service, "interface": "public",
                                                "url": "http://e.example.com", "region_id": fz.region,
                                                "enabled": True}),
    ]
    for collection, key, victim, doc in resources:
        for mutant in single_mutations({key: doc}):
            yield "POST", f"/v3/{collection}", mutant
            yield "PATCH", f"/v3/{collection}/{victim}", mutant
    # immutable resources: only `{"options": {"immutable": false}}` may touch them
    for collection, key, victim in (("domains", "domain", fz.imm_domain), ("projects", "project", fz.imm_project),
                                    ("roles", "role", fz.imm_role)):
        for mutant in single_mutations({key: {"options": {"immutable": True}}}):
            yield "PATCH", f"/v3/{collection}/{victim}", mutant
    password = {"user": {"name": "admin", "domain": {"id": "default"}, "password": fz.cloud.admin_password}}
    identities = [
        {"methods": ["password"], "password": password},
        {"methods": ["password"], "password": {"user": {"id": fz.user, "password": fz.user_password}}},
        {"methods": ["token"], "token": {"id": fz.user_token}},
        {"methods": ["application_credential"], "application_credential": {"id": uuid.uuid4().hex, "secret": "s"}},
        {"methods": ["application_credential"],
         "application_credential": {"name": "ac", "user": {"name": fz.user_name, "domain": {"id": "default"}},
                                    "secret": "s"}},
    ]
    scopes = [{"project": {"name": "admin", "domain": {"id": "default"}}}, {"project": {"id": fz.project}},
              {"domain": {"id": "default"}}, {"domain": {"name": "Default"}}, {"system": {"all": True}},
              {"OS-TRUST:trust": {"id": uuid.uuid4().hex}}]
    for identity in identities:
        for mutant in single_mutations({"auth": {"identity": identity}}, ("auth", "identity")):
            yield "POST", "/v3/auth/tokens", mutant
    for scope in scopes:
        doc = {"auth": {"identity": {"methods": ["password"], "password": password}, "scope": scope}}
        for mutant in single_mutations(doc, ("auth", "scope")):
            yield "POST", "/v3/auth/tokens", mutant
    for mutant in single_mutations({"user": {"original_password": "fz-pass-2", "password": "fz-pass-2"}}):
        yield "POST", f"/v3/users/{fz.user2}/password", mutant


def test_sweep_every_field_with_every_wrong_type(fz):
    headers = {"X-Auth-Token": fz.admin_token, "Content-Type": "application/json"}
    count = 0
    for method, path, doc in _sweep_docs(fz):
        send(fz, method, path, ("json", doc), headers)
        count += 1
    assert count > 1000
