"""Neutron's API conventions, shared by every network resource (networks, ports, routers...).

What every Neutron collection does the same way lives here, so each resource module only
says what is particular to it:

- body parsing and validation (`Resource.parse_create/parse_update`): unknown attribute
  -> 400 "Unrecognized attribute(s) 'x'", read-only attributes, required ones, defaults,
  Neutron's "Invalid input for x. Reason: ..." messages, `tenant_id`/`project_id` (both
  accepted, both returned);
- attribute-level policy (`enforce_attrs`, `hide_attrs`): rules named `create_port:binding:host_id`
  are checked only when that attribute is in the body; `get_port:binding:host_id` hides it;
- listing (`list_response`): filtering by any attribute (repeated parameters OR'd), the tag
  filters, `fields=`, `sort_key`/`sort_dir`, `limit`/`marker`/`page_reverse` with
  `<collection>_links`;
- standard attributes (`standard_attrs`, `check_if_match`, `bump_revision`), the tags API
  (`register_tags_routes`), the `/extensions` registry and quotas (`check_quota`,
  `register_quota_resource`; the `/quotas` routes are in api/quotas.py).

Filtering, sorting and paging run over the rendered dicts the caller may see: the caller's
SQL query already restricts rows to what the project may see (that is where scale comes
from), and doing the rest on dicts keeps every attribute filterable exactly as rendered.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

from sqlalchemy import delete, select

from pocketstack.common.errors import ApiError, BadRequest, Conflict, Forbidden, PreconditionFailed
from pocketstack.common.runtime import current

# ---------------------------------------------------------------------------- errors


def neutron_error(code: int, etype: str, message: str) -> ApiError:
    """An ApiError with Neutron's exception name as its `type`."""
    err = ApiError(message, type=etype)
    err.code = code
    return err


class InvalidInput(BadRequest):
    type = "InvalidInput"

    def __init__(self, error_message: str):
        super().__init__(f"Invalid input for operation: {error_message}.")


class PolicyNotAuthorized(Forbidden):
    type = "PolicyNotAuthorized"

    def __init__(self, action: str):
        super().__init__(f"({'rule:' + action}) is disallowed by policy")


class OverQuota(Conflict):
    type = "OverQuota"

    def __init__(self, resources: Iterable[str]):
        super().__init__(f"Quota exceeded for resources: {sorted(resources)}.")


class RevisionNumberConstraintFailed(PreconditionFailed):
    type = "RevisionNumberConstraintFailed"

    def __init__(self, expected: int, current_rev: int):
        super().__init__(f"Constrained to {expected}, but current revision is {current_rev}")


def new_uuid() -> str:
    """Neutron's ids are dashed UUIDs (clients and Nova's schemas accept either, humans expect these)."""
    return str(uuid.uuid4())


def not_found(etype: str, message: str) -> ApiError:
    return neutron_error(404, etype, message)


# ---------------------------------------------------------------------------- validators
class Invalid(ValueError):
    """Raised by a validator with Neutron's reason text."""


UNSET: Any = object()


def v_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise Invalid(f"'{value}' cannot be converted to boolean")


def v_string(max_len: int | None = 255, nullable: bool = False):
    def check(value):
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise Invalid(f"'{value}' is not a valid string")
        if max_len is not None and len(value) > max_len:
            raise Invalid(f"'{value}' exceeds maximum length of {max_len}")
        return value
    return check


def v_uuid(value):
    try:
        if not isinstance(value, str):
            raise ValueError
        uuid.UUID(value)
        return value
    except ValueError:
        raise Invalid(f"'{value}' is not a valid UUID") from None


def v_uuid_or_none(value):
    return None if value is None else v_uuid(value)


INT_MAX = 2 ** 31 - 1  # what every database's INTEGER column holds


def v_int(minimum: int | None = None, maximum: int | None = INT_MAX, nullable: bool = False):
    def check(value):
        if value is None and nullable:
            return None
        if isinstance(value, bool):
            raise Invalid(f"'{value}' is not an integer")
        try:
            number = int(value)
            if isinstance(value, float) and number != value:
                raise ValueError
        except (TypeError, ValueError):
            raise Invalid(f"'{value}' is not an integer") from None
        if minimum is not None and number < minimum:
            raise Invalid(f"'{number}' is too small - must be at least '{minimum}'")
        if maximum is not None and number > maximum:
            raise Invalid(f"'{number}' is too large - must be no larger than '{maximum}'")
        return number
    return check


def v_enum(values: Iterable, nullable: bool = False):
    allowed = list(values)

    def check(value):
        if value is None and nullable:
            return None
        if value not in allowed:
            raise Invalid(f"'{value}' is not in {allowed}")
        return value
    return check


def v_ip(value, nullable: bool = False):
    if value is None and nullable:
        return None
    try:
        if not isinstance(value, str) or "/" in value:
            raise ValueError
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise Invalid(f"'{value}' is not a valid IP address") from None


def v_ip_or_none(value):
    return v_ip(value, nullable=True)


def v_cidr(value):
    """A subnet CIDR in canonical form (host bits must be zero, as upstream requires)."""
    try:
        if not isinstance(value, str):
            raise ValueError
        net = ipaddress.ip_network(value, strict=False)
        if "/" not in value:
            raise ValueError
    except ValueError:
        raise Invalid(f"'{value}' is not a valid IP subnet") from None
    if str(net) != value and str(net.network_address) != value.split("/")[0]:
        raise Invalid(f"'{value}' isn't a recognized IP subnet cidr, '{net}' is recommended")
    return str(net)


def v_ip_or_cidr(value):
    """An address or a prefix (allowed address pairs, remote prefixes)."""
    try:
        if not isinstance(value, str):
            raise ValueError
        if "/" in value:
            return str(ipaddress.ip_network(value, strict=False))
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise Invalid(f"'{value}' is neither a valid IP address, nor is it a valid IP subnet") from None


_MAC = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$")


def v_mac(value):
    if not isinstance(value, str) or not _MAC.match(value):
        raise Invalid(f"'{value}' is not a valid MAC address")
    mac = value.lower().replace("-", ":")
    if mac == "00:00:00:00:00:00" or int(mac[:2], 16) & 1:
        raise Invalid(f"'{value}' is not a valid MAC address")
    return mac


def v_dict(value):
    if not isinstance(value, dict):
        raise Invalid(f"'{value}' is not a dictionary")
    return value


def v_dict_or_none(value):
    return {} if value is None else v_dict(value)


def v_list(item: Callable | None = None, unique: bool = False):
    def check(value):
        if not isinstance(value, list):
            raise Invalid(f"'{value}' is not a list")
        out = [item(v) for v in value] if item else list(value)
        if unique:
            seen = []
            for v in out:
                if v in seen:
                    raise Invalid(f"Duplicate items in the list: '{v}'")
                seen.append(v)
        return out
    return check


# ---------------------------------------------------------------------------- resources
@dataclass
class Attr:
    """One attribute of a resource's body.

    `post`/`put`: allowed in create/update bodies; `required` on create; `default` (a value
    or a zero-argument callable) is filled in on create when absent; `validate` converts the
    value or raises `Invalid` (its message becomes Neutron's "Invalid input for ..." reason).
    """
    name: str
    post: bool = True
    put: bool = False
    required: bool = False
    default: Any = UNSET
    validate: Callable[[Any], Any] | None = None


STANDARD_ATTRS = [
    Attr("name", put=True, default="", validate=v_string(255)),
    Attr("description", put=True, default="", validate=v_string(255)),
]


@dataclass
class Resource:
    """A Neutron resource type: names, attributes, policy action names."""
    singular: str            # "network"
    plural: str              # "networks"
    attrs: list[Attr] = field(default_factory=list)
    named: bool = True       # has the standard `name` and `description`

    def __post_init__(self):
        base = STANDARD_ATTRS if self.named else []
        self.by_name = {a.name: a for a in base + self.attrs}

    def _body(self, body: Any) -> dict:
        if not isinstance(body, dict) or self.singular not in body:
            raise BadRequest(f"Unable to find '{self.singular}' in request body")
        data = body[self.singular]
        if not isinstance(data, dict):
            raise BadRequest(f"Invalid input for {self.singular}. Reason: '{data}' is not a dictionary.")
        return data

    def _check(self, name: str, value):
        attr = self.by_name[name]
        if attr.validate is None:
            return value
        try:
            return attr.validate(value)
        except Invalid as exc:
            raise BadRequest(f"Invalid input for {name}. Reason: {exc}.") from None

    def parse_create(self, body: Any, ctx) -> dict:
        """Validated create attributes, with defaults and `project_id` (the caller's unless
        an admin names another; `tenant_id` and `project_id` must agree)."""
        data = dict(self._body(body))
        project = _project_from_body(data, ctx)
        unknown = [k for k in data if k not in self.by_name]
        if unknown:
            raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
        out: dict = {}
        for name, attr in self.by_name.items():
            if name in data:
                if not attr.post:
                    raise BadRequest(f"Attribute '{name}' not allowed in POST")
                out[name] = self._check(name, data[name])
            elif attr.required:
                raise BadRequest(f"Failed to parse request. Required attribute '{name}' not specified")
            elif attr.default is not UNSET:
                out[name] = attr.default() if callable(attr.default) else attr.default
        out["project_id"] = project
        out["_explicit"] = set(data)  # what the caller set (attribute-level policy looks at it)
        return out

    def parse_update(self, body: Any) -> dict:
        data = dict(self._body(body))
        for key in ("id", "tenant_id", "project_id"):
            if key in data:
                raise BadRequest(f"Cannot update read-only attribute {key}")
        unknown = [k for k in data if k not in self.by_name]
        if unknown:
            raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
        out = {}
        for name, value in data.items():
            if not self.by_name[name].put:
                raise BadRequest(f"Cannot update read-only attribute {name}")
            out[name] = self._check(name, value)
        return out


def _project_from_body(data: dict, ctx) -> str | None:
    tenant = data.pop("tenant_id", None)
    project = data.pop("project_id", None)
    if tenant is not None and project is not None and tenant != project:
        raise BadRequest("'project_id' and 'tenant_id' do not match")
    chosen = project or tenant
    if chosen is not None and not isinstance(chosen, str):
        raise BadRequest(f"Invalid input for project_id. Reason: '{chosen}' is not a valid string.")
    return chosen or getattr(ctx, "project_id", None)


# ---------------------------------------------------------------------------- policy
def creds(ctx) -> dict:
    return ctx.policy_creds() if ctx is not None else {"roles": ["admin"], "is_admin": True}


def is_admin(ctx) -> bool:
    if ctx is None:
        return True
    return current().enforcer.check("context_is_admin", {}, ctx.policy_creds())


def policy_target(item: dict, **extra) -> dict:
    """A policy target from a rendered resource: flat keys, booleans as 'True'/'False'
    (so `'True':%(shared)s` style checks work), `tenant_id` mirrored."""
    target = {}
    for k, v in {**item, **extra}.items():
        target[k] = str(v) if isinstance(v, bool) else v
    if "project_id" in target:
        target.setdefault("tenant_id", target["project_id"])
    return target


def check(ctx, action: str, target: dict) -> bool:
    if ctx is None or getattr(ctx, "is_admin_token", False):
        return True
    enforcer = current().enforcer
    return enforcer.check(action, {**target, "target": target}, ctx.policy_creds())


def enforce(ctx, action: str, target: dict) -> None:
    if not check(ctx, action, target):
        raise PolicyNotAuthorized(action)


_RULES_CACHE: dict = {}


def _attr_rules(action: str) -> list[str]:
    """The `action:<attribute>` rules (cached until rules are added)."""
    enforcer = current().enforcer
    key = (action, id(enforcer), len(enforcer.defaults), len(enforcer.overrides))
    found = _RULES_CACHE.get(key)
    if found is None:
        prefix = action + ":"
        names = set(enforcer.defaults) | set(enforcer.overrides)
        found = _RULES_CACHE[key] = sorted(n for n in names if n.startswith(prefix))
    return found


def enforce_attrs(ctx, action: str, target: dict, explicit: Iterable[str], values: dict | None = None) -> None:
    """Check `action:attr` rules for the attributes the caller set (`binding:host_id` and
    `router:external` are whole attribute names); a nested rule such as
    `create_port:fixed_ips:ip_address` applies when an element of that list sets the key."""
    explicit = set(explicit)
    values = values or {}
    for rule in _attr_rules(action):
        rest = rule[len(action) + 1:]
        if rest in explicit:
            enforce(ctx, rule, target)
            continue
        attr, _, sub = rest.rpartition(":")
        if attr in explicit and sub:
            value = values.get(attr)
            if isinstance(value, list) and any(isinstance(v, dict) and sub in v for v in value):
                enforce(ctx, rule, target)


_HIDE_KEYS = ("project_id", "network:project_id", "shared", "router:external")


def hide_attrs(ctx, action: str, item: dict, target: dict | None = None, cache: dict | None = None) -> dict:
    """Drop the attributes a `get_x:attr` rule hides from this caller. Pass one `cache`
    dict for a whole list: which attributes to drop is decided once per owner (the target's
    project, network owner, shared and external flags) instead of for each of thousands of
    items, and the target is only built on a miss."""
    if ctx is None:
        return item
    if cache is None:
        target = target or policy_target(item)
        drop = [rule[len(action) + 1:] for rule in _attr_rules(action) if rule[len(action) + 1:] in item
                and not check(ctx, rule, target)]
    else:
        source = target if target is not None else item
        key = (action,) + tuple(str(source.get(k)) for k in _HIDE_KEYS)
        drop = cache.get(key)
        if drop is None:
            target = target or policy_target(item)
            drop = cache[key] = [rule[len(action) + 1:] for rule in _attr_rules(action)
                                 if not check(ctx, rule, target)]
    for attr in drop:
        item.pop(attr, None)
    return item


# ---------------------------------------------------------------------------- standard attributes
def fmt_time(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(dt.timezone.utc)
    # isoformat is several times faster than strftime (10,000-item lists format 20,000 stamps)
    return value.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def standard_attrs(row, tags: list[str] | None = None) -> dict:
    """id, name, description, project_id + tenant_id, tags, timestamps, revision_number."""
    out = {"id": row.id}
    if hasattr(row, "name"):
        out["name"] = row.name
    if hasattr(row, "description"):
        out["description"] = row.description or ""
    project = getattr(row, "project_id", None)
    out["project_id"] = project
    out["tenant_id"] = project
    out["tags"] = sorted(tags or [])
    out["created_at"] = fmt_time(row.created_at)
    out["updated_at"] = fmt_time(row.updated_at)
    out["revision_number"] = row.revision_number
    return out


def bump_revision(row) -> None:
    """Every update bumps revision_number and updated_at (call once per changing request)."""
    from pocketstack.common.db import utcnow

    row.revision_number = (row.revision_number or 0) + 1
    row.updated_at = utcnow()


_IF_MATCH = re.compile(r"^\s*revision_number=(\d+)\s*$")


def check_if_match(req, row) -> None:
    """`If-Match: revision_number=N` (revision-if-match): 412 unless the row is at N."""
    header = req.headers.get("if-match") if req is not None else None
    if not header:
        return
    for part in header.split(","):
        m = _IF_MATCH.match(part)
        if not m:
            raise BadRequest("If-Match header must be in the form 'revision_number=N'")
        expected = int(m.group(1))
        if expected != row.revision_number:
            raise RevisionNumberConstraintFailed(expected, row.revision_number)


# ---------------------------------------------------------------------------- tags
def load_tags(sess, resource_type: str, ids: Iterable[str]) -> dict[str, list[str]]:
    from pocketstack.network import models as m

    ids = list(ids)
    out: dict[str, list[str]] = {i: [] for i in ids}
    if not ids:
        return out
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start:chunk_start + 500]
        rows = sess.execute(select(m.Tag.resource_id, m.Tag.tag).where(
            m.Tag.resource_type == resource_type, m.Tag.resource_id.in_(chunk))).all()
        for rid, tag in rows:
            out.setdefault(rid, []).append(tag)
    return out


def delete_tags(sess, resource_type: str, resource_id: str) -> None:
    from pocketstack.network import models as m

    sess.execute(delete(m.Tag).where(m.Tag.resource_type == resource_type, m.Tag.resource_id == resource_id))


def _check_tag(tag) -> str:
    if not isinstance(tag, str) or not tag or len(tag) > 255 or "," in tag:
        raise BadRequest(f"Invalid input for tags. Reason: '{tag}' is not a valid tag.")
    return tag


@dataclass
class TagTarget:
    """How the tags API reaches one resource type: `load(sess, ctx, id) -> row` (404 when the
    caller cannot see it) and `target(sess, row) -> policy target`; policy rules are
    upstream's `get_<singular>:tags`, `update_<singular>:tags`, ..."""
    resource_type: str
    singular: str
    load: Callable
    target: Callable


TAG_TARGETS: dict[str, TagTarget] = {}


def register_tags(plural: str, singular: str, load: Callable, target: Callable) -> None:
    """Make `/v2.0/<plural>/{id}/tags[/{tag}]` work for one resource type (tags are stored
    under `singular` as the resource type). `load(sess, ctx, id) -> row`; `target(sess, row)`
    or `target(row)` -> policy target."""
    import inspect

    try:
        takes_session = len(inspect.signature(target).parameters) >= 2
    except (TypeError, ValueError):
        takes_session = True
    if not takes_session:  # `target(row)` is accepted too
        one_arg = target

        def target(sess, row):
            return one_arg(row)
    TAG_TARGETS[plural] = TagTarget(singular, singular, load, target)


def set_tags(sess, resource_type: str, row, tags: list[str]) -> list[str]:
    from pocketstack.network import models as m

    tags = sorted(set(_check_tag(t) for t in tags))
    delete_tags(sess, resource_type, row.id)
    for t in tags:
        sess.add(m.Tag(resource_type=resource_type, resource_id=row.id, tag=t))
    bump_revision(row)
    return tags


# ---------------------------------------------------------------------------- listing
LIST_PARAMS = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse",
               "tags", "tags-any", "not-tags", "not-tags-any"}


def _as_query_value(value) -> list[str]:
    """Every string a filter value may match for a rendered attribute value."""
    if isinstance(value, bool):
        return [str(value), str(value).lower(), "1" if value else "0"]
    if value is None:
        return ["", "None", "null"]
    if isinstance(value, list):
        out = []
        for v in value:
            out.extend(_as_query_value(v) if not isinstance(v, (dict, list)) else [])
        return out
    return [str(value)]


def _tag_filter(query, tags: list[str]) -> bool:
    def split(name):
        return [t for v in query.getlist(name) for t in v.split(",") if t]
    have = set(tags)
    all_ = split("tags")
    if all_ and not set(all_) <= have:
        return False
    any_ = split("tags-any")
    if any_ and not have & set(any_):
        return False
    not_all = split("not-tags")
    if not_all and set(not_all) <= have:
        return False
    not_any = split("not-tags-any")
    if not_any and have & set(not_any):
        return False
    return True


FilterHook = Callable[[dict, list[str]], bool]


def filter_items(req, items: list[dict], *, hooks: dict[str, FilterHook] | None = None,
                 extra_params: Iterable[str] = (), valid: Iterable[str] = ()) -> list[dict]:
    """Apply `attr=value` filters (repeated = OR, different attributes = AND), tag filters,
    `hooks` for attributes with their own matching (e.g. `fixed_ips=ip_address=...`).
    Unknown attributes are 400 (filter-validation); `extra_params` are consumed elsewhere."""
    hooks = hooks or {}
    query = req.query
    known = set(valid) | set(hooks) | {"id", "name", "description", "project_id", "tenant_id", "created_at",
                                       "updated_at", "revision_number", "tags"}
    for item in items[:1]:
        known |= set(item)
    skip = LIST_PARAMS | set(extra_params)
    filters: dict[str, list[str]] = {}
    for key, value in query.multi_items():
        if key in skip:
            continue
        # an empty list has no rendered item to learn the attributes from: nothing to reject
        if key not in known and items:
            raise BadRequest(f"{key} is invalid attribute for filtering")
        filters.setdefault(key, []).append(value)
    # `project_id` and `tenant_id` are the same filter
    if "tenant_id" in filters and "project_id" not in filters:
        filters["project_id"] = filters.pop("tenant_id")
    has_tag_filter = any(k in query for k in ("tags", "tags-any", "not-tags", "not-tags-any"))

    def keep(item: dict) -> bool:
        for key, wanted in filters.items():
            if key in hooks:
                if not hooks[key](item, wanted):
                    return False
                continue
            if key not in item:
                continue  # hidden from this caller: upstream ignores it rather than leaking
            have = _as_query_value(item[key])
            if not any(w in have for w in wanted):
                return False
        if has_tag_filter and not _tag_filter(query, item.get("tags") or []):
            return False
        return True

    return [i for i in items if keep(i)]


def _sort_value(item: dict, key: str):
    v = item.get(key)
    if v is None:
        return (0, "")
    if isinstance(v, bool):
        return (1, int(v))
    if isinstance(v, (int, float)):
        return (1, v)
    return (2, str(v))


def parse_sort(req, sortable: Iterable[str] | None = None) -> list[tuple[str, bool]]:
    keys = req.query.getlist("sort_key")
    dirs = req.query.getlist("sort_dir")
    if dirs and len(dirs) != len(keys):
        raise BadRequest("The number of sort_keys and sort_dirs must be same")
    out = []
    for i, key in enumerate(keys):
        direction = dirs[i] if dirs else "asc"
        if direction not in ("asc", "desc"):
            raise BadRequest(f"{direction} is invalid value for sort_dir, valid value is 'asc' and 'desc'")
        out.append((key, direction == "desc"))
    if sortable is not None:
        bad = [k for k, _ in out if k not in set(sortable)]
        if bad:
            raise BadRequest(f"{bad} is invalid attribute for sort_keys")
    return out


def sort_items(items: list[dict], sort: list[tuple[str, bool]]) -> list[dict]:
    keys = list(sort)
    if not any(k == "id" for k, _ in keys):
        keys.append(("id", keys[-1][1] if keys else False))
    out = list(items)
    for key, desc in reversed(keys):
        out.sort(key=lambda i: _sort_value(i, key), reverse=desc)
    return out


def select_fields(item: dict, fields: list[str]) -> dict:
    if not fields:
        return item
    return {k: v for k, v in item.items() if k in fields}


def list_response(req, plural: str, items: list[dict], *, hooks: dict[str, FilterHook] | None = None,
                  extra_params: Iterable[str] = (), valid_filters: Iterable[str] = (),
                  sortable: Iterable[str] | None = None) -> dict:
    """The whole list convention: filter, sort, page (with links), then select fields."""
    items = filter_items(req, items, hooks=hooks, extra_params=extra_params, valid=valid_filters)
    known = set(items[0]) if items else None
    items = sort_items(items, parse_sort(req, sortable if sortable is not None else known))
    page, links = paginate(req, items)
    body: dict = {}
    if links is not None:
        body[f"{plural}_links"] = links
    fields = req.query.getlist("fields")
    body[plural] = [select_fields(i, fields) for i in page]
    return body


def parse_limit(req) -> int | None:
    """`limit` as an int (None for absent or 0); 400 for a bad value."""
    raw = req.query.get("limit")
    if raw in (None, ""):
        return None
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest(f"Invalid input for limit. Reason: '{raw}' is not an integer.") from None
    if limit < 0:
        raise BadRequest(f"Invalid input for limit. Reason: '{raw}' should be non-negative.")
    return limit or None


def is_paged(req) -> bool:
    return parse_limit(req) is not None or bool(req.query.get("marker"))


def paginate(req, items: list[dict]) -> tuple[list[dict], list[dict] | None]:
    """`limit`/`marker`/`page_reverse` over sorted items (only `id` is read): the page and
    its `<collection>_links` (None when the request does not page)."""
    limit, marker, reverse = page_params(req)
    if limit is None and not marker:
        return items, None
    if marker:
        pos = next((n for n, i in enumerate(items) if i["id"] == marker), None)
        if pos is None:
            raise not_found("NotFound", f"Marker {marker} could not be found.")
        if reverse:
            before = items[:pos]
            page = before[-limit:] if limit else before
            more = limit is not None and len(before) > limit
        else:
            after = items[pos + 1:]
            page = after[:limit] if limit else after
            more = limit is not None and len(after) > limit
    elif reverse:
        page = items[-limit:] if limit else items
        more = limit is not None and len(items) > limit
    else:
        page = items[:limit] if limit else items
        more = limit is not None and len(items) > limit
    return page, page_links(req, page, more)


def page_params(req) -> tuple[int | None, str | None, bool]:
    """(limit, marker, page_reverse) of a list request."""
    return (parse_limit(req), req.query.get("marker") or None,
            req.query.get("page_reverse", "").lower() in ("true", "1"))


def page_links(req, page: list[dict], more: bool) -> list[dict]:
    """A page's `<collection>_links`; `more`: items lie beyond the page in paging direction."""
    _, marker, reverse = page_params(req)
    links = []
    base = req.url.split("?", 1)[0]
    params = [(k, v) for k, v in req.query.multi_items() if k not in ("marker", "page_reverse")]
    if page:
        # Neutron's links: `next` continues after the page's last item, `previous` goes
        # back before its first; in reverse paging the "more" side is the previous one.
        has_next = bool(marker) if reverse else more
        has_prev = more if reverse else bool(marker)
        if has_next:
            links.append({"rel": "next", "href": f"{base}?{urlencode(params + [('marker', page[-1]['id'])])}"})
        if has_prev:
            query = urlencode(params + [("marker", page[0]["id"]), ("page_reverse", "True")])
            links.append({"rel": "previous", "href": f"{base}?{query}"})
    return links


def show_response(req, singular: str, item: dict) -> dict:
    return {singular: select_fields(item, req.query.getlist("fields"))}


# ---------------------------------------------------------------------------- extensions
EXTENSIONS: dict[str, dict] = {}


def register_extension(alias: str, name: str, description: str, updated: str = "2023-01-01T00:00:00-00:00") -> None:
    """List an implemented API extension under `/v2.0/extensions` (clients probe aliases)."""
    EXTENSIONS[alias] = {"alias": alias, "name": name, "description": description, "updated": updated,
                         "links": []}


# ---------------------------------------------------------------------------- quotas
@dataclass
class QuotaResource:
    name: str
    default: int
    count: Callable[[Any, str], int]  # (session, project_id) -> used


QUOTA_RESOURCES: dict[str, QuotaResource] = {}


def register_quota_resource(name: str, default: int, count: Callable[[Any, str], int]) -> None:
    """A quota-limited resource (`network`, `port`, `router`...): its default limit (the
    `[quotas] quota_<name>` option overrides it) and how to count a project's usage."""
    QUOTA_RESOURCES[name] = QuotaResource(name, default, count)


def default_limit(name: str) -> int:
    res = QUOTA_RESOURCES[name]
    raw = current().config.get("quotas", f"quota_{name}", str(res.default))
    try:
        return int(raw)
    except ValueError:
        return res.default


def project_limits(sess, project_id: str) -> dict[str, int]:
    from pocketstack.network import models as m

    limits = {name: default_limit(name) for name in QUOTA_RESOURCES}
    for row in sess.scalars(select(m.Quota).where(m.Quota.project_id == project_id)):
        if row.resource in limits:
            limits[row.resource] = row.limit
    return limits


def check_quota(sess, project_id: str | None, resource: str, delta: int = 1) -> None:
    """409 OverQuota when `delta` more `resource` would pass the project's limit (-1 = none)."""
    if not project_id or resource not in QUOTA_RESOURCES or delta <= 0:
        return
    limit = project_limits(sess, project_id)[resource]
    if limit < 0:
        return
    used = QUOTA_RESOURCES[resource].count(sess, project_id)
    if used + delta > limit:
        raise OverQuota([resource])


# ---------------------------------------------------------------------------- events
def emit(resource: str, action: str, payload: dict, ctx=None) -> None:
    """`network.<resource>.<action>` with ids and names (never secrets)."""
    from pocketstack.common import events

    events.emit(f"network.{resource}.{action}", payload, context=ctx)


def not_found_error(kind: str, ident: str) -> ApiError:
    """`NetworkNotFound` etc. with upstream's message."""
    human = {"Network": "Network", "Subnet": "Subnet", "Port": "Port", "Subnetpool": "Subnet pool"}.get(kind, kind)
    return not_found(f"{kind}NotFound", f"{human} {ident} could not be found.")


def ensure(cond: bool, err: ApiError) -> None:
    if not cond:
        raise err


