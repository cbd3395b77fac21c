"""Request checks shared by the periphery's route modules: policy, body and query validation.

Messages follow Nova's JSON-schema errors ("Invalid input for field/attribute X. Value: V.
...") so clients and Tempest see the same 400s; every check raises `BadRequest` and
nothing is written before all checks pass.
"""
from __future__ import annotations

import re
import uuid as uuidlib

from pocketstack.common.errors import BadRequest, Forbidden
from pocketstack.common.runtime import current
from pocketstack.compute.api.common import at_least, version

MAX_INT = 2147483647
TRUE = {"true", "1", "on", "yes", "y", "t"}
FALSE = {"false", "0", "off", "no", "n", "f"}
_BOOL_ENUM = ("True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes",
              "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no")


def authorize(req, rule: str, target: dict | None = None):
    """Enforce `rule` for the caller (target defaults to the caller's own project/user)."""
    ctx = req.context
    tgt = {"project_id": ctx.project_id, "user_id": ctx.user_id}
    if target:
        tgt.update(target)
    if not current().enforcer.check(rule, tgt, ctx.policy_creds()):
        raise Forbidden(f"Policy doesn't allow {rule} to be performed.")
    return ctx


def can(req, rule: str, target: dict | None = None) -> bool:
    try:
        authorize(req, rule, target)
        return True
    except Forbidden:
        return False


def invalid(path: str, value, why: str) -> BadRequest:
    return BadRequest(f"Invalid input for field/attribute {path}. Value: {value}. {why}")


def body(req, key: str, allowed: tuple | None = None, required: tuple = ()) -> dict:
    """`req.json[key]` as an object, with Nova's additionalProperties/required checks."""
    data = req.json
    if not isinstance(data, dict):
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {data}. "
                         f"'{key}' is a required property" if data is None else
                         f"Invalid input: {data!r} is not of type 'object'")
    if key not in data:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {data}. '{key}' is a required property")
    extra = [k for k in data if k != key]
    if extra:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(repr(e) for e in extra)} "
                         f"{'was' if len(extra) == 1 else 'were'} unexpected)")
    inner = data[key]
    if not isinstance(inner, dict):
        raise invalid(key, inner, f"{inner!r} is not of type 'object'")
    check_keys(inner, key, allowed, required)
    return inner


def check_keys(obj: dict, path: str, allowed: tuple | None, required: tuple = ()) -> None:
    for name in required:
        if name not in obj:
            raise invalid(path, obj, f"'{name}' is a required property")
    if allowed is not None:
        extra = sorted(k for k in obj if k not in allowed)
        if extra:
            raise invalid(path, obj, f"Additional properties are not allowed ({', '.join(repr(e) for e in extra)} "
                          f"{'was' if len(extra) == 1 else 'were'} unexpected)")


def integer(value, path: str, minimum: int = 0, maximum: int = MAX_INT, allow_str: bool = True) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or (allow_str and isinstance(value, str))):
        raise invalid(path, value, f"{value!r} is not of type 'integer', 'string'")
    if isinstance(value, str):
        if not re.fullmatch(r"-?[0-9]+", value.strip()):
            raise invalid(path, value, f"'{value}' does not match '^-?[0-9]+$'")
        value = int(value.strip())
    if value < minimum:
        raise invalid(path, value, f"{value} is less than the minimum of {minimum}")
    if value > maximum:
        raise invalid(path, value, f"{value} is greater than the maximum of {maximum}")
    return value


def boolean(value, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in _BOOL_ENUM:
        return value.lower() in TRUE
    raise invalid(path, value, f"{value!r} is not one of {list((True,) + _BOOL_ENUM[:10] + (False,) + _BOOL_ENUM[10:])}")


def bool_param(raw: str, name: str) -> bool:
    low = raw.strip().lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise BadRequest(f"Invalid value '{raw}' for {name}: it must be a boolean.")


def name(value, path: str = "name", pattern: str | None = None, max_len: int = 255,
         strip_ok: bool = False) -> str:
    """Nova's `name`: a printable string of 1..255 without leading/trailing whitespace."""
    if not isinstance(value, str):
        raise invalid(path, value, f"{value!r} is not of type 'string'")
    if len(value) < 1:
        raise invalid(path, value, f"'{value}' is too short")
    if len(value) > max_len:
        raise invalid(path, value, f"'{value}' is too long")
    if not strip_ok and value != value.strip():
        raise invalid(path, value, f"'{value}' is not a 'name'")
    if any(not ch.isprintable() for ch in value):
        raise invalid(path, value, f"'{value}' is not a 'name'")
    if pattern and not re.fullmatch(pattern, value):
        raise invalid(path, value, f"'{value}' does not match '{pattern}'")
    return value


def description(value, path: str = "description", max_len: int = 65535):
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(path, value, f"{value!r} is not of type 'string', 'null'")
    if len(value) > max_len:
        raise invalid(path, value, f"'{value[:32]}...' is too long")
    if any(not (ch.isprintable() or ch.isspace()) for ch in value):
        raise invalid(path, value, f"'{value}' does not match the description pattern")
    return value


def query_limit(req) -> int | None:
    raw = req.query.get("limit")
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]+", raw):
        raise invalid("limit", raw, f"'{raw}' does not match '^[0-9]*$'")
    return min(int(raw), 1000)


def is_uuid(value: str) -> bool:
    try:
        uuidlib.UUID(str(value))
        return True
    except ValueError:
        return False


def strict_query(req, allowed: tuple, since: str = "2.75") -> None:
    """From 2.75 Nova refuses query parameters it does not know (400)."""
    if at_least(req, since):
        extra = sorted({k for k in req.query.keys() if k not in allowed})
        if extra:
            raise BadRequest(f"Invalid input for query parameters {extra[0]}. Value: "
                             f"{req.query.get(extra[0])}. Additional properties are not allowed "
                             f"('{extra[0]}' was unexpected)")


def v(req):
    return version(req)


# ---------------------------------------------------------------------------- links
def service_root(req) -> str:
    """scheme://host[:port]/compute: the mounted service's root URL."""
    raw = req.raw
    return str(raw.url.replace(path=raw.scope.get("root_path", ""), query="", fragment="")).rstrip("/")


def links(req, collection: str, item_id) -> list[dict]:
    root = service_root(req)
    return [{"rel": "self", "href": f"{root}/v2.1/{collection}/{item_id}"},
            {"rel": "bookmark", "href": f"{root}/{collection}/{item_id}"}]


def next_links(req, collection: str, items: list, limit: int | None, marker_of) -> list[dict] | None:
    """Nova's `<collection>_links`: a `next` link when a full page was returned."""
    if not items or limit is None or len(items) < limit:
        return None
    from urllib.parse import urlencode

    params = [(k, v) for k, v in req.query.multi_items() if k != "marker"]
    params.append(("marker", str(marker_of(items[-1]))))
    return [{"rel": "next", "href": f"{service_root(req)}/v2.1/{collection}?{urlencode(params)}"}]


def verify_project(project_id: str) -> None:
    """Nova asks Keystone whether a project exists before granting it anything (400 if not)."""
    from pocketstack.common.errors import NotFound
    from pocketstack.identity import core as identity

    try:
        with current().db.session() as sess:
            identity.get_project(sess, project_id)
    except NotFound:
        raise BadRequest(f"Project ID {project_id} is not a valid project.") from None


def ts(value) -> str | None:
    """Nova's naive ISO timestamps (`2024-01-02T03:04:05.000000`)."""
    if value is None:
        return None
    return value.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%f")


def action_of(req, allowed: tuple) -> tuple[str, object]:
    """The one `{"action": {...}}` member of a POST .../action body."""
    data = req.json
    if not isinstance(data, dict) or len(data) != 1:
        raise BadRequest("There is either no action or more than one action in the request body.")
    name = next(iter(data))
    if name not in allowed:
        raise BadRequest(f"There is no such action: {name}")
    return name, data[name]
