"""The Image service's logic, and the public Python interface other services use.

HTTP lives in `image/api/`; everything here works on database sessions and auth
contexts and raises `ApiError`s. Other services (Compute boots from images and
snapshots into them) call:

    get_image(image_id, ctx=None) -> dict             # Glance's JSON representation
    open_image_data(image_id, ctx=None) -> (dict, iterator of bytes)
    create_image(ctx, meta) -> dict                   # a queued image
    upload_image(ctx, image_id, stream, size=None) -> dict
    create_image_from_stream(ctx, meta, stream) -> dict

`ctx=None` means the service itself (no visibility or policy checks).

Semantics follow Glance v2: images are visible to their owner, to everyone when
public or community, to member projects when shared; lists hide community images
(unless asked for), other projects' shared images not yet accepted, and hidden ones;
a failed upload puts the image back to `queued` with nothing stored.
"""
from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from pocketstack.common import events
from pocketstack.common.context import AuthContext
from pocketstack.common.db import utcnow
from pocketstack.common.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    NotFound,
    PayloadTooLarge,
)
from pocketstack.common.runtime import current
from pocketstack.image import models as m
from pocketstack.image import stores as st

log = logging.getLogger("pocketstack.image")

DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
STATUSES = ["queued", "saving", "active", "killed", "deleted", "uploading", "importing",
            "pending_delete", "deactivated"]
VISIBILITIES = ["community", "public", "private", "shared"]
MEMBER_STATUSES = ["pending", "accepted", "rejected"]
IMPORT_METHODS = ["glance-direct", "web-download", "copy-image"]
HASH_ALGO = "sha512"
# Formats with headers a hypervisor interprets (backing files, extents, parents).
STRUCTURED_FORMATS = frozenset({"qcow2", "vmdk", "vhd", "vhdx", "vdi", "qed"})

# Attributes with their own columns that users may set.
MUTABLE_CORE = ("name", "visibility", "protected", "os_hidden", "disk_format", "container_format",
                "min_disk", "min_ram", "owner", "tags")
READ_ONLY = ("status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size", "created_at",
             "updated_at", "direct_url", "self", "file", "schema", "stores", "locations")
RESERVED = ("location", "deleted", "deleted_at", "id_", "member_status")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# [image] / [image_format] / [import_filtering_opts] keys and their defaults.
CONFIG_DEFAULTS = {
    ("image", "image_size_cap"): str(1 << 40),     # bytes per image (Glance's [DEFAULT] image_size_cap)
    ("image", "image_count_total"): "-1",          # images per project (-1: unlimited)
    ("image", "image_size_total"): "-1",           # MiB of image data per project (-1: unlimited)
    ("image", "image_member_quota"): "128",
    ("image", "image_property_quota"): "128",
    ("image", "image_tag_quota"): "128",
    ("image", "limit_param_default"): "25",
    ("image", "api_limit_max"): "1000",
    ("image", "enabled_import_methods"): "glance-direct,copy-image",
    ("image", "show_image_direct_url"): "false",
    ("image", "show_multiple_locations"): "false",
    ("image_format", "require_image_format_match"): "true",
    ("import_filtering_opts", "allowed_hosts"): "",
    ("import_filtering_opts", "allowed_ports"): "80,443",
}


def conf(section: str, key: str) -> str:
    return current().config.get(section, key, default=CONFIG_DEFAULTS.get((section, key), ""))


def conf_int(section: str, key: str) -> int:
    raw = conf(section, key).strip()
    try:
        return int(raw)
    except ValueError:
        raise ApiError(f"[{section}] {key} must be an integer, not {raw!r}") from None


def conf_bool(section: str, key: str) -> bool:
    return conf(section, key).strip().lower() in ("1", "true", "yes", "on")


def enabled_import_methods() -> list[str]:
    methods = [x.strip() for x in conf("image", "enabled_import_methods").split(",") if x.strip()]
    out = [x for x in methods if x in IMPORT_METHODS]
    if "web-download" in out and not _allowed_hosts():
        out.remove("web-download")  # off unless an allow-list says where from
    return out


def _allowed_hosts() -> list[str]:
    return [h.strip().lower() for h in conf("import_filtering_opts", "allowed_hosts").split(",") if h.strip()]


# ---------------------------------------------------------------------------- backend
class Backend:
    """The configured stores (the first is the default) and the staging area."""

    def __init__(self, stores: list[st.Store], staging: st.StagingArea):
        self.stores = {s.id: s for s in stores}
        self.default = stores[0]
        self.staging = staging

    def store(self, store_id: str) -> st.Store:
        try:
            return self.stores[store_id]
        except KeyError:
            raise ApiError(f"image store {store_id!r} is not configured") from None


_backend: Backend | None = None
_backend_lock = threading.Lock()


def set_backend(backend: Backend | None) -> None:
    global _backend
    _backend = backend


def backend() -> Backend:
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = _build_backend(current().config)
    return _backend


def _build_backend(cfg) -> Backend:
    """Glance's configuration: one store (`[glance_store] default_store`, a `file` store by
    default), or several with `[DEFAULT] enabled_backends = fast:file, cheap:file` and
    `[glance_store] default_backend = fast`, each configured in its own section."""
    enabled = [x.strip() for x in cfg.get("DEFAULT", "enabled_backends", default="").split(",") if x.strip()]
    stores: list[st.Store] = []
    if enabled:
        for item in enabled:
            store_id, _, kind = item.partition(":")
            factory = st.STORE_TYPES.get(kind.strip())
            if factory is None:
                raise ApiError(f"[DEFAULT] enabled_backends: unknown store type {kind!r} for {store_id!r}")
            stores.append(factory(cfg, store_id.strip(), store_id.strip()))
        default = cfg.get("glance_store", "default_backend", default="") or stores[0].id
    else:
        kind = cfg.get("glance_store", "default_store", default="file")
        factory = st.STORE_TYPES.get(kind)
        if factory is None:
            raise ApiError(f"[glance_store] default_store: unknown store type {kind!r}")
        stores.append(factory(cfg, kind, "glance_store"))
        default = kind
    stores.sort(key=lambda s: s.id != default)  # the default first
    if stores[0].id != default:
        raise ApiError(f"[glance_store] default_backend {default!r} is not one of the enabled backends")
    staging = st.StagingArea(cfg.get("glance_store", "staging_dir", default="")
                             or cfg.state_dir / "images" / "staging")
    return Backend(stores, staging)


def _inspector():
    """The format inspector module, when it is installed (it is optional at import time)."""
    if importlib.util.find_spec("pocketstack.image.format_inspector") is None:
        return None
    return importlib.import_module("pocketstack.image.format_inspector")


# ---------------------------------------------------------------------------- helpers
def fmt_time(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _project(ctx: AuthContext | None) -> str | None:
    return getattr(ctx, "project_id", None)


def is_admin(ctx: AuthContext | None) -> bool:
    if ctx is None:
        return True
    return current().enforcer.check("context_is_admin", {}, ctx.policy_creds())


def enforce(ctx: AuthContext | None, action: str, target: dict) -> None:
    if ctx is None:
        return
    creds = ctx.policy_creds()
    current().enforcer.enforce(action, {**target, "target": target}, creds)


def target_for(img: m.Image, member: m.ImageMember | None = None, **extra) -> dict:
    return {"project_id": img.owner, "owner": img.owner, "visibility": img.visibility,
            "member_id": member.member if member is not None else None, "image_id": img.id,
            "protected": img.protected, "status": img.status, **extra}


def emit(event_type: str, payload: dict, ctx=None) -> None:
    events.emit(event_type, payload, context=ctx)


def not_found(image_id: str) -> NotFound:
    return NotFound(f"No image found with ID {image_id}")


def _member_of(sess: Session, image_id: str, project_id: str | None) -> m.ImageMember | None:
    if not project_id:
        return None
    return sess.execute(select(m.ImageMember).where(m.ImageMember.image_id == image_id,
                                                    m.ImageMember.member == project_id)).scalar()


def is_visible(ctx: AuthContext | None, img: m.Image, member: m.ImageMember | None) -> bool:
    if ctx is None or is_admin(ctx):
        return True
    if img.visibility in ("public", "community"):
        return True
    project = _project(ctx)
    if project is not None and img.owner == project:
        return True
    return img.visibility == "shared" and member is not None


def load(sess: Session, image_id: str, ctx: AuthContext | None, *, for_update: bool = False
         ) -> tuple[m.Image, m.ImageMember | None]:
    """The image if the caller may see it (404 otherwise), and the caller's membership."""
    img = sess.get(m.Image, image_id) if isinstance(image_id, str) and image_id else None
    if img is None:
        raise not_found(image_id)
    member = _member_of(sess, img.id, _project(ctx))
    if not is_visible(ctx, img, member):
        raise not_found(image_id)
    return img, member


# ---------------------------------------------------------------------------- rendering
def properties_of(sess: Session, image_ids: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {i: {} for i in image_ids}
    if image_ids:
        for p in sess.execute(select(m.ImageProperty).where(m.ImageProperty.image_id.in_(image_ids))).scalars():
            out[p.image_id][p.name] = p.value
    return out


def tags_of(sess: Session, image_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {i: [] for i in image_ids}
    if image_ids:
        rows = sess.execute(select(m.ImageTag).where(m.ImageTag.image_id.in_(image_ids))
                            .order_by(m.ImageTag.created_at, m.ImageTag.value)).scalars()
        for t in rows:
            out[t.image_id].append(t.value)
    return out


def locations_of(sess: Session, image_ids: list[str]) -> dict[str, list[m.ImageLocation]]:
    out: dict[str, list[m.ImageLocation]] = {i: [] for i in image_ids}
    if image_ids:
        rows = sess.execute(select(m.ImageLocation).where(m.ImageLocation.image_id.in_(image_ids))
                            .order_by(m.ImageLocation.id)).scalars()
        for loc in rows:
            out[loc.image_id].append(loc)
    return out


def render(sess: Session, images: list[m.Image], ctx: AuthContext | None = None) -> list[dict]:
    ids = [i.id for i in images]
    props, tags, locs = properties_of(sess, ids), tags_of(sess, ids), locations_of(sess, ids)
    show_locations = conf_bool("image", "show_multiple_locations")
    show_direct = conf_bool("image", "show_image_direct_url")
    out = []
    for img in images:
        body = {
            **props[img.id],
            "id": img.id, "name": img.name, "status": img.status, "visibility": img.visibility,
            "protected": img.protected, "os_hidden": img.os_hidden, "checksum": img.checksum,
            "os_hash_algo": img.os_hash_algo, "os_hash_value": img.os_hash_value, "owner": img.owner,
            "size": img.size, "virtual_size": img.virtual_size, "container_format": img.container_format,
            "disk_format": img.disk_format, "min_disk": img.min_disk, "min_ram": img.min_ram,
            "created_at": fmt_time(img.created_at), "updated_at": fmt_time(img.updated_at),
            "tags": tags[img.id], "self": f"/v2/images/{img.id}", "file": f"/v2/images/{img.id}/file",
            "schema": "/v2/schemas/image",
        }
        locations = locs[img.id]
        if locations and img.status in ("active", "deactivated"):
            body["stores"] = ",".join(sorted({loc.store for loc in locations}))
        # Locations reveal the storage layout: only when the operator allows it, and never
        # for deactivated images to non-admins (as Glance).
        visible_locs = img.status != "deactivated" or is_admin(ctx)
        if show_locations:
            body["locations"] = ([{"url": loc.url, "metadata": dict(loc.meta or {})} for loc in locations]
                                 if visible_locs else [])
        if show_direct and locations and visible_locs:
            body["direct_url"] = locations[0].url
        out.append(body)
    return out


def render_one(sess: Session, img: m.Image, ctx: AuthContext | None = None) -> dict:
    return render(sess, [img], ctx)[0]


def event_payload(sess: Session, img: m.Image) -> dict:
    body = render_one(sess, img)
    for key in ("self", "file", "schema", "locations", "direct_url"):
        body.pop(key, None)
    return body


# ---------------------------------------------------------------------------- validation
def _bad_schema(message: str) -> BadRequest:
    return BadRequest(f"Provided object does not match schema 'image': {message}")


def _check_attr_name(name: str, *, creating: bool = False) -> None:
    if not isinstance(name, str) or not name:
        raise BadRequest("Property names must be non-empty strings.")
    if len(name) > 255:
        raise _bad_schema(f"property name '{name[:40]}...' is too long (255 characters at most)")
    if name in READ_ONLY or (name == "id" and not creating):
        raise Forbidden(f"Attribute '{name}' is read-only.")
    if name in RESERVED or name.startswith("os_glance"):
        raise Forbidden(f"Attribute '{name}' is reserved.")


def _check_core_value(name: str, value: Any) -> Any:
    if name == "name":
        if value is not None and not isinstance(value, str):
            raise _bad_schema(f"{value!r} is not of type 'null', 'string'")
        if isinstance(value, str) and len(value) > 255:
            raise _bad_schema("name is too long (255 characters at most)")
        return value
    if name == "visibility":
        if value not in VISIBILITIES:
            raise _bad_schema(f"{value!r} is not one of {VISIBILITIES}")
        return value
    if name in ("protected", "os_hidden"):
        if not isinstance(value, bool):
            raise _bad_schema(f"{value!r} is not of type 'boolean'")
        return value
    if name == "disk_format":
        if value is not None and value not in DISK_FORMATS:
            raise _bad_schema(f"{value!r} is not one of {[None] + DISK_FORMATS}")
        return value
    if name == "container_format":
        if value is not None and value not in CONTAINER_FORMATS:
            raise _bad_schema(f"{value!r} is not one of {[None] + CONTAINER_FORMATS}")
        return value
    if name in ("min_disk", "min_ram"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad_schema(f"{value!r} is not of type 'integer'")
        if value < 0 or value > 2 ** 31 - 1:
            raise BadRequest(f"Invalid value for {name}: it must be between 0 and {2 ** 31 - 1}.")
        return value
    if name == "owner":
        if value is not None and not isinstance(value, str):
            raise _bad_schema(f"{value!r} is not of type 'null', 'string'")
        if isinstance(value, str) and len(value) > 255:
            raise _bad_schema("owner is too long (255 characters at most)")
        return value
    if name == "tags":
        return _check_tags(value)
    raise AssertionError(name)


def _check_tags(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _bad_schema(f"{value!r} is not of type 'array'")
    out: list[str] = []
    for tag in value:
        _check_tag(tag)
        if tag not in out:
            out.append(tag)
    return out


def _check_tag(tag: Any) -> str:
    if not isinstance(tag, str):
        raise _bad_schema(f"{tag!r} is not of type 'string'")
    if not tag or len(tag) > 255:
        raise BadRequest("Image tags must be between 1 and 255 characters long.")
    return tag


def _check_property_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad_schema(f"{value!r} is not of type 'string' (property {name})")
    if len(value) > 65535:
        raise BadRequest(f"The value of property {name} is too long (65535 characters at most).")
    if name in ("kernel_id", "ramdisk_id") and value and not UUID_RE.match(value):
        raise _bad_schema(f"{value!r} does not match the UUID pattern (property {name})")
    return value


def _check_visibility_change(ctx, img_target: dict, visibility: str) -> None:
    if visibility == "public":
        enforce(ctx, "publicize_image", img_target)
    elif visibility == "community":
        enforce(ctx, "communitize_image", img_target)


def _over_quota(what: str, limit: int, usage: int, delta: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Resource {what} is over limit of {limit} due to current usage {usage} "
                           f"and delta {delta}")


def _check_count_quota(sess: Session, owner: str | None) -> None:
    limit = conf_int("image", "image_count_total")
    if limit < 0 or owner is None:
        return
    usage = sess.execute(select(func.count()).select_from(m.Image).where(m.Image.owner == owner)).scalar()
    if usage + 1 > limit:
        raise _over_quota("image_count_total", limit, usage, 1)


def size_limit_for(sess: Session, owner: str | None) -> tuple[int, str]:
    """How many bytes one more upload by `owner` may hold, and which limit that is."""
    cap = conf_int("image", "image_size_cap")
    total_mib = conf_int("image", "image_size_total")
    limit, which = (cap if cap >= 0 else 1 << 62), "image_size_cap"
    if total_mib >= 0 and owner is not None:
        used = sess.execute(select(func.coalesce(func.sum(m.Image.size), 0))
                            .where(m.Image.owner == owner, m.Image.size.is_not(None))).scalar() or 0
        left = max(0, total_mib * (1 << 20) - int(used))
        if left < limit:
            limit, which = left, "image_size_total"
    return limit, which


def _too_large(which: str, limit: int) -> PayloadTooLarge:
    if which == "image_size_cap":
        return PayloadTooLarge(f"Image exceeds the maximum image size of {limit} bytes (image_size_cap).")
    return PayloadTooLarge(f"Image exceeds the storage quota: the project may store {limit} more bytes "
                           f"(image_size_total).")


# ---------------------------------------------------------------------------- create
def create(sess: Session, ctx: AuthContext | None, body: Any) -> m.Image:
    if not isinstance(body, dict):
        raise BadRequest("Provided object does not match schema 'image': the body must be a JSON object.")
    core: dict[str, Any] = {}
    props: dict[str, str] = {}
    for name, value in body.items():
        _check_attr_name(name, creating=True)
        if name == "id":
            if not isinstance(value, str) or not UUID_RE.match(value):
                raise _bad_schema(f"{value!r} does not match the UUID pattern (id)")
            core["id"] = value.lower()
        elif name in MUTABLE_CORE:
            core[name] = _check_core_value(name, value)
        else:
            props[name] = _check_property_value(name, value)
    if len(props) > conf_int("image", "image_property_quota") >= 0:
        raise PayloadTooLarge(f"Maximum number of image properties exceeded ({len(props)} > "
                              f"{conf_int('image', 'image_property_quota')}).")
    tags = core.pop("tags", [])
    if len(tags) > conf_int("image", "image_tag_quota") >= 0:
        raise PayloadTooLarge(f"Maximum number of image tags exceeded ({len(tags)} > "
                              f"{conf_int('image', 'image_tag_quota')}).")
    owner = core.pop("owner") if "owner" in core else _project(ctx)
    visibility = core.pop("visibility", "shared")
    target = {"project_id": _project(ctx), "owner": owner, "visibility": visibility}
    enforce(ctx, "add_image", target)
    _check_visibility_change(ctx, {**target, "project_id": owner}, visibility)
    image_id = core.pop("id", None) or str(uuid.uuid4())
    if sess.get(m.Image, image_id) is not None:
        raise Conflict(f"Image with identifier {image_id} already exists!")
    _check_count_quota(sess, owner)
    now = utcnow()
    img = m.Image(id=image_id, owner=owner, status="queued", visibility=visibility,
                  protected=core.pop("protected", False), os_hidden=core.pop("os_hidden", False),
                  name=core.pop("name", None), disk_format=core.pop("disk_format", None),
                  container_format=core.pop("container_format", None), min_disk=core.pop("min_disk", 0),
                  min_ram=core.pop("min_ram", 0), created_at=now, updated_at=now)
    sess.add(img)
    sess.flush()
    for name, value in props.items():
        sess.add(m.ImageProperty(image_id=img.id, name=name, value=value))
    for i, tag in enumerate(tags):
        sess.add(m.ImageTag(image_id=img.id, value=tag, created_at=now + dt.timedelta(microseconds=i)))
    sess.flush()
    emit("image.create", event_payload(sess, img), ctx)
    return img


# ---------------------------------------------------------------------------- update
@dataclass
class Change:
    op: str                 # add | replace | remove
    path: list[str]
    value: Any = None
    strict_add: bool = False  # the v2.0 patch media type: `add` of an existing property conflicts


def patch_image(sess: Session, ctx: AuthContext | None, image_id: str, changes: list[Change]) -> m.Image:
    img, member = load(sess, image_id, ctx)
    target = target_for(img, member)
    enforce(ctx, "modify_image", target)
    if not changes:
        return img
    props = properties_of(sess, [img.id])[img.id]
    tags = tags_of(sess, [img.id])[img.id]
    new_props, new_tags = dict(props), list(tags)
    core: dict[str, Any] = {}
    for ch in changes:
        root = ch.path[0]
        if root == "locations":
            raise Forbidden("It's not allowed to update locations if locations are invisible."
                            if not conf_bool("image", "show_multiple_locations")
                            else "Changing image locations is not supported by this cloud.")
        if len(ch.path) > 1:
            raise BadRequest(f"Invalid JSON pointer for this resource: '/{'/'.join(ch.path)}'")
        _check_attr_name(root)
        is_core = root in MUTABLE_CORE
        if ch.op == "remove":
            if is_core:
                raise Forbidden(f"Property {root} may not be removed.")
            if root not in new_props:
                raise Conflict(f"Property {root} does not exist.")
            del new_props[root]
            continue
        if is_core:
            if ch.op == "add" and ch.strict_add and root != "tags":
                current_value = getattr(img, root) if root not in core else core[root]
                if current_value is not None:
                    raise Conflict(f"Property {root} already present.")
            value = _check_core_value(root, ch.value)
            if root == "tags":
                new_tags = value
            else:
                core[root] = value
        else:
            if ch.op == "replace" and root not in new_props:
                raise Conflict(f"Property {root} does not exist.")
            if ch.op == "add" and ch.strict_add and root in new_props:
                raise Conflict(f"Property {root} already present.")
            new_props[root] = _check_property_value(root, ch.value)
    # Checks that depend on the final state.
    for name in ("disk_format", "container_format"):
        if name in core and core[name] != getattr(img, name) and img.status not in ("queued", "importing"):
            raise Forbidden(f"Attribute {name} can be only replaced for a queued image.")
    if "visibility" in core and core["visibility"] != img.visibility:
        _check_visibility_change(ctx, target, core["visibility"])
    if "owner" in core and core["owner"] != img.owner and not is_admin(ctx):
        raise Forbidden("Only administrators may change the owner of an image.")
    quota = conf_int("image", "image_property_quota")
    if quota >= 0 and len(new_props) > quota and len(new_props) > len(props):
        raise PayloadTooLarge(f"Maximum number of image properties exceeded ({len(new_props)} > {quota}).")
    quota = conf_int("image", "image_tag_quota")
    if quota >= 0 and len(new_tags) > quota and len(new_tags) > len(tags):
        raise PayloadTooLarge(f"Maximum number of image tags exceeded ({len(new_tags)} > {quota}).")
    for name, value in core.items():
        setattr(img, name, value)
    if new_props != props:
        for name in set(props) - set(new_props):
            sess.execute(delete(m.ImageProperty).where(m.ImageProperty.image_id == img.id,
                                                       m.ImageProperty.name == name))
        for name, value in new_props.items():
            if name not in props:
                sess.add(m.ImageProperty(image_id=img.id, name=name, value=value))
            elif props[name] != value:
                sess.execute(update(m.ImageProperty).where(m.ImageProperty.image_id == img.id,
                                                           m.ImageProperty.name == name).values(value=value))
    if new_tags != tags:
        _set_tags(sess, img.id, new_tags)
    img.updated_at = utcnow()
    sess.flush()
    emit("image.update", event_payload(sess, img), ctx)
    return img


def _set_tags(sess: Session, image_id: str, tags: list[str]) -> None:
    sess.execute(delete(m.ImageTag).where(m.ImageTag.image_id == image_id))
    now = utcnow()
    for i, tag in enumerate(tags):
        sess.add(m.ImageTag(image_id=image_id, value=tag, created_at=now + dt.timedelta(microseconds=i)))


def set_internal_properties(sess: Session, image_id: str, values: dict[str, str | None]) -> None:
    """Glance's `os_glance_*` bookkeeping properties (not settable by users)."""
    for name, value in values.items():
        sess.execute(delete(m.ImageProperty).where(m.ImageProperty.image_id == image_id,
                                                   m.ImageProperty.name == name))
        if value is not None:
            sess.add(m.ImageProperty(image_id=image_id, name=name, value=value))


# ---------------------------------------------------------------------------- tags
def add_tag(sess: Session, ctx, image_id: str, tag: str) -> None:
    img, member = load(sess, image_id, ctx)
    enforce(ctx, "modify_image", target_for(img, member))
    _check_tag(tag)
    tags = tags_of(sess, [img.id])[img.id]
    if tag in tags:
        return
    quota = conf_int("image", "image_tag_quota")
    if 0 <= quota <= len(tags):
        raise PayloadTooLarge(f"Maximum number of image tags exceeded ({len(tags) + 1} > {quota}).")
    sess.add(m.ImageTag(image_id=img.id, value=tag, created_at=utcnow()))
    img.updated_at = utcnow()
    sess.flush()
    emit("image.update", event_payload(sess, img), ctx)


def delete_tag(sess: Session, ctx, image_id: str, tag: str) -> None:
    img, member = load(sess, image_id, ctx)
    enforce(ctx, "modify_image", target_for(img, member))
    res = sess.execute(delete(m.ImageTag).where(m.ImageTag.image_id == img.id, m.ImageTag.value == tag))
    if not res.rowcount:
        raise NotFound(f"Tag {tag} not found on image {img.id}.")
    img.updated_at = utcnow()
    sess.flush()
    emit("image.update", event_payload(sess, img), ctx)


# ---------------------------------------------------------------------------- delete
def delete_image(ctx: AuthContext | None, image_id: str) -> None:
    """Delete the record, then (after commit) its data in every store and the staging area."""
    with current().db.session() as sess:
        img, member = load(sess, image_id, ctx)
        enforce(ctx, "delete_image", target_for(img, member))
        if img.protected:
            raise Forbidden(f"Image {img.id} is protected and cannot be deleted.")
        payload = event_payload(sess, img)
        locations = [(loc.store, loc.url) for loc in locations_of(sess, [img.id])[img.id]]
        for model in (m.ImageProperty, m.ImageTag, m.ImageMember, m.ImageLocation):
            sess.execute(delete(model).where(model.image_id == img.id))
        sess.delete(img)
    be = backend()
    for store_id, url in locations:
        try:
            be.store(store_id).delete(url)
        except Exception:  # the record is gone; leftover data is only logged
            log.exception("could not delete the data of image %s at %s", image_id, url)
    be.staging.delete(image_id)
    emit("image.delete", {**payload, "status": "deleted", "deleted": True,
                          "deleted_at": fmt_time(utcnow())}, ctx)


# ---------------------------------------------------------------------------- actions
def _set_active(sess: Session, ctx, image_id: str, active: bool) -> None:
    """deactivate/reactivate: active <-> deactivated, idempotent, anything else is 400."""
    action, want, other = ("reactivate", "active", "deactivated") if active else \
        ("deactivate", "deactivated", "active")
    img, member = load(sess, image_id, ctx)
    enforce(ctx, action, target_for(img, member))
    if img.status == want:
        return
    if img.status != other:
        raise BadRequest(f"Not allowed to {action} image in status '{img.status}'")
    img.status, img.updated_at = want, utcnow()
    sess.flush()
    emit("image.update", event_payload(sess, img), ctx)


def deactivate(sess: Session, ctx, image_id: str) -> None:
    _set_active(sess, ctx, image_id, active=False)


def reactivate(sess: Session, ctx, image_id: str) -> None:
    _set_active(sess, ctx, image_id, active=True)


# ---------------------------------------------------------------------------- list
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id", "created_at",
             "updated_at", "virtual_size", "min_disk", "min_ram", "owner", "visibility")
TIME_OPS = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__", "eq": "__eq__", "neq": "__ne__"}
IN_FIELDS = ("name", "status", "container_format", "disk_format", "id", "owner", "visibility")


@dataclass
class ListQuery:
    filters: dict[str, list[str]] = field(default_factory=dict)   # name -> values (all must hold)
    tags: list[str] = field(default_factory=list)
    visibility: str | None = None
    member_status: str = "accepted"
    os_hidden: bool | None = False
    sort: list[tuple[str, str]] = field(default_factory=lambda: [("created_at", "desc")])
    limit: int | None = None
    marker: str | None = None


def _parse_in(value: str) -> list[str]:
    """`in:a,b,"c,d"` -> ['a', 'b', 'c,d'] (Glance's in-operator with quoting)."""
    out, cur, quoted, i = [], "", False, 0
    while i < len(value):
        ch = value[i]
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    if quoted:
        raise BadRequest("Invalid filter value: the quotes are not closed.")
    out.append(cur)
    return out


def _parse_time(value: str, name: str) -> dt.datetime:
    try:
        ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid filter value {value} for {name}: it is not an ISO 8601 time.") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.timezone.utc)
    return ts


def _column_filter(name: str, raw: str):
    col = getattr(m.Image, name)
    if name in ("created_at", "updated_at"):
        op, sep, rest = raw.partition(":")
        if not sep or op not in TIME_OPS:
            op, rest = "eq", raw
        ts = _parse_time(rest, name)
        if ts.microsecond:
            return getattr(col, TIME_OPS[op])(ts)
        # Times are shown to the second: a whole-second value stands for that whole second.
        nxt = ts + dt.timedelta(seconds=1)
        return {"gt": col >= nxt, "gte": col >= ts, "lt": col < ts, "lte": col < nxt,
                "eq": and_(col >= ts, col < nxt), "neq": or_(col < ts, col >= nxt)}[op]
    if name in ("size_min", "size_max"):
        raise AssertionError
    if name in ("size", "virtual_size", "min_disk", "min_ram"):
        try:
            return col == int(raw)
        except ValueError:
            raise BadRequest(f"Invalid filter value {raw!r} for {name}: it must be an integer.") from None
    if name == "protected":
        return col == _parse_bool(raw, name)
    if raw.startswith("in:") and name in IN_FIELDS:
        return col.in_(_parse_in(raw[3:]))
    if raw.startswith("eq:") and name in IN_FIELDS:
        raw = raw[3:]
    return col == raw


def _parse_bool(raw: str, name: str) -> bool:
    low = raw.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise BadRequest(f"Invalid value '{raw}' for parameter '{name}': it must be a boolean.")


COLUMN_FILTERS = ("name", "status", "container_format", "disk_format", "id", "owner", "checksum",
                  "os_hash_value", "os_hash_algo", "size", "virtual_size", "min_disk", "min_ram",
                  "created_at", "updated_at", "protected")


def list_images(sess: Session, ctx: AuthContext | None, q: ListQuery) -> tuple[list[dict], str | None]:
    """One page of the images the caller may list, and the marker of the next page."""
    conds = []
    project = _project(ctx)
    admin = is_admin(ctx)
    if q.visibility and q.visibility != "all":
        conds.append(m.Image.visibility == q.visibility)
    elif q.visibility is None:
        # community images only appear when asked for (or to their owner)
        conds.append(or_(m.Image.visibility != "community", m.Image.owner == project)
                     if project else m.Image.visibility != "community")
    if not admin:
        member_conds = [m.ImageMember.image_id == m.Image.id, m.ImageMember.member == project]
        if q.member_status != "all":
            member_conds.append(m.ImageMember.status == q.member_status)
        visible = [m.Image.visibility.in_(("public", "community")),
                   and_(m.Image.visibility == "shared", exists().where(and_(*member_conds)))]
        if project:
            visible.append(m.Image.owner == project)
        conds.append(or_(*visible))
    if q.os_hidden is not None:
        conds.append(m.Image.os_hidden == q.os_hidden)
    for name, values in q.filters.items():
        for raw in values:
            if name == "size_min":
                conds.append(m.Image.size >= _int_param(raw, name))
            elif name == "size_max":
                conds.append(m.Image.size <= _int_param(raw, name))
            elif name in COLUMN_FILTERS:
                conds.append(_column_filter(name, raw))
            else:
                conds.append(exists().where(m.ImageProperty.image_id == m.Image.id,
                                            m.ImageProperty.name == name, m.ImageProperty.value == raw))
    for tag in q.tags:
        conds.append(exists().where(m.ImageTag.image_id == m.Image.id, m.ImageTag.value == tag))
    order = []
    keys = [k for k, _ in q.sort]
    for key, direction in q.sort:
        col = getattr(m.Image, key)
        order.append(col.desc() if direction == "desc" else col.asc())
    if "id" not in keys:
        order.append(m.Image.id.desc() if (q.sort and q.sort[-1][1] == "desc") else m.Image.id.asc())
    ids = list(sess.execute(select(m.Image.id).where(*conds).order_by(*order)).scalars())
    start = 0
    if q.marker:
        try:
            start = ids.index(q.marker) + 1
        except ValueError:
            raise BadRequest(f"Invalid marker. Image {q.marker} could not be found.") from None
    page_ids = ids[start:] if q.limit is None else ids[start:start + q.limit]
    more = q.limit is not None and start + q.limit < len(ids)
    if not page_ids:
        return [], None
    rows = {i.id: i for i in sess.execute(select(m.Image).where(m.Image.id.in_(page_ids))).scalars()}
    images = [rows[i] for i in page_ids if i in rows]
    return render(sess, images, ctx), (page_ids[-1] if more else None)


def _int_param(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Invalid value '{raw}' for parameter '{name}': it must be an integer.") from None
    if value < 0:
        raise BadRequest(f"Invalid value '{raw}' for parameter '{name}': it must not be negative.")
    return value


# ---------------------------------------------------------------------------- members
def render_member(mem: m.ImageMember) -> dict:
    return {"created_at": fmt_time(mem.created_at), "updated_at": fmt_time(mem.updated_at),
            "image_id": mem.image_id, "member_id": mem.member, "schema": "/v2/schemas/member",
            "status": mem.status}


def add_member(sess: Session, ctx, image_id: str, member_id: Any) -> m.ImageMember:
    img, member = load(sess, image_id, ctx)
    enforce(ctx, "add_member", target_for(img, member))
    if not isinstance(member_id, str) or not member_id or len(member_id) > 255:
        raise BadRequest("Invalid input for field 'member': it must be a project id (a string of 1 to "
                         "255 characters).")
    _only_shared(img)
    if _member_of(sess, img.id, member_id) is not None:
        raise Conflict(f"Member {member_id} is duplicated for image {img.id}")
    quota = conf_int("image", "image_member_quota")
    if quota >= 0:
        count = sess.execute(select(func.count()).select_from(m.ImageMember)
                             .where(m.ImageMember.image_id == img.id)).scalar()
        if count + 1 > quota:
            raise PayloadTooLarge(f"Maximum number of image members exceeded ({count + 1} > {quota}).")
    now = utcnow()
    mem = m.ImageMember(image_id=img.id, member=member_id, status="pending", created_at=now, updated_at=now)
    sess.add(mem)
    sess.flush()
    emit("image.member.create", render_member(mem), ctx)
    return mem


def _members_visible(sess: Session, ctx, img: m.Image, member: m.ImageMember | None) -> list[m.ImageMember]:
    if ctx is None or is_admin(ctx) or img.owner == _project(ctx):
        return list(sess.execute(select(m.ImageMember).where(m.ImageMember.image_id == img.id)
                                 .order_by(m.ImageMember.created_at, m.ImageMember.id)).scalars())
    return [member] if member is not None else []


def _only_shared(img: m.Image) -> None:
    if img.visibility != "shared":
        raise Forbidden("Only shared images have members.")


def list_members(sess: Session, ctx, image_id: str) -> list[m.ImageMember]:
    img, member = load(sess, image_id, ctx)
    enforce(ctx, "get_members", target_for(img, member))
    _only_shared(img)
    return _members_visible(sess, ctx, img, member)


def get_member(sess: Session, ctx, image_id: str, member_id: str) -> m.ImageMember:
    img, member = load(sess, image_id, ctx)
    enforce(ctx, "get_member", target_for(img, member))
    _only_shared(img)
    for mem in _members_visible(sess, ctx, img, member):
        if mem.member == member_id:
            return mem
    raise NotFound(f"Member {member_id} not found for image {img.id}.")


def update_member(sess: Session, ctx, image_id: str, member_id: str, status: Any) -> m.ImageMember:
    img, member = load(sess, image_id, ctx)
    _only_shared(img)
    mem = _member_of(sess, img.id, member_id)
    if mem is None or mem not in _members_visible(sess, ctx, img, member):
        raise NotFound(f"Member {member_id} not found for image {img.id}.")
    enforce(ctx, "modify_member", target_for(img, mem))
    if status not in MEMBER_STATUSES:
        raise BadRequest(f"Invalid status: {status!r}; it must be one of {', '.join(MEMBER_STATUSES)}.")
    mem.status, mem.updated_at = status, utcnow()
    sess.flush()
    emit("image.member.update", render_member(mem), ctx)
    return mem


def delete_member(sess: Session, ctx, image_id: str, member_id: str) -> None:
    img, member = load(sess, image_id, ctx)
    enforce(ctx, "delete_member", target_for(img, member))
    _only_shared(img)
    mem = _member_of(sess, img.id, member_id)
    if mem is None or mem not in _members_visible(sess, ctx, img, member):
        raise NotFound(f"Member {member_id} not found for image {img.id}.")
    payload = render_member(mem)
    sess.delete(mem)
    sess.flush()
    emit("image.member.delete", payload, ctx)


# ---------------------------------------------------------------------------- data: upload
class UploadAborted(Exception):
    """The client went away mid-upload."""


def _format_check(disk_format: str | None) -> tuple[st.Verifier, dict]:
    """A verifier for the store: the format inspector's verdict on the complete data."""
    found: dict = {}

    def verify(path: str) -> None:
        inspector = _inspector()
        if inspector is None:
            return
        try:
            if conf_bool("image_format", "require_image_format_match"):
                info = inspector.check(path, disk_format)
            else:
                # Lenient mode (Glance's require_image_format_match = false): data nothing
                # recognises may carry any disk_format, but the safety checks still run and a
                # structured format declared as another one (how host-file-disclosure images
                # are smuggled) is still refused.
                info = inspector.check(path, disk_format, require_format_match=False)
                if info.format in STRUCTURED_FORMATS and info.format != disk_format:
                    raise inspector.ImageFormatError(
                        f"Image data is in {info.format} format, which does not match disk_format "
                        f"{disk_format}")
        except inspector.ImageFormatError as exc:
            raise BadRequest(str(exc) or "The image data does not match its disk_format.") from None
        found["virtual_size"] = getattr(info, "virtual_size", None)
        found["format"] = getattr(info, "format", None)

    return verify, found


def _require_formats(img: m.Image) -> None:
    if not img.disk_format or not img.container_format:
        raise BadRequest("Properties disk_format, container_format must be set prior to saving data.")


def _begin_transfer(ctx, image_id: str, *, action: str, from_status: str, to_status: str,
                    declared_size: int | None) -> tuple[dict, int, str]:
    """Check and move the image into its transfer status (atomically: one upload at a time)."""
    with current().db.session() as sess:
        img, member = load(sess, image_id, ctx)
        enforce(ctx, action, target_for(img, member))
        _require_formats(img)
        if img.status != from_status:
            raise Conflict(f"Image status transition from {img.status} to {to_status} is not allowed")
        limit, which = size_limit_for(sess, img.owner)
        if declared_size is not None and declared_size > limit:
            raise _too_large(which, limit)
        res = sess.execute(update(m.Image).where(m.Image.id == img.id, m.Image.status == from_status)
                           .values(status=to_status, updated_at=utcnow()))
        if res.rowcount != 1:
            raise Conflict(f"Image status transition from {img.status} to {to_status} is not allowed")
        return {"id": img.id, "owner": img.owner, "disk_format": img.disk_format}, limit, which


def _revert(image_id: str, from_status: str, to_status: str = "queued", props: dict | None = None) -> None:
    with current().db.session() as sess:
        sess.execute(update(m.Image).where(m.Image.id == image_id, m.Image.status == from_status)
                     .values(status=to_status, updated_at=utcnow()))
        if props and sess.get(m.Image, image_id) is not None:
            set_internal_properties(sess, image_id, props)


def _store_error(exc: BaseException, which: str, limit: int) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, st.SizeLimitExceeded):
        return _too_large(which, limit)
    if isinstance(exc, st.StoreFull):
        return PayloadTooLarge("Image storage media is full: there is no space left in the image store.")
    if isinstance(exc, UploadAborted):
        return BadRequest("The upload was interrupted before all the data arrived.")
    log.error("image data transfer failed: %s", exc, exc_info=exc)
    return ApiError("The image data could not be stored.")


def upload(ctx, image_id: str, stream: Iterable[bytes], declared_size: int | None = None,
           store_id: str | None = None) -> dict:
    """`PUT /v2/images/{id}/file`: stream into a store (the default one unless `store_id`);
    queued -> saving -> active. On any failure the image goes back to `queued` and nothing
    stays stored."""
    be = backend()
    if store_id is not None and store_id not in be.stores:
        raise BadRequest(f"Store for identifier {store_id} not found")
    store = be.stores[store_id] if store_id else be.default
    info, limit, which = _begin_transfer(ctx, image_id, action="upload_image", from_status="queued",
                                         to_status="saving", declared_size=declared_size)
    verify, found = _format_check(info["disk_format"])
    try:
        location, size, md5, sha512 = store.add(image_id, _guard(stream), limit, verify)
    except BaseException as exc:
        _revert(image_id, "saving")
        err = _store_error(exc, which, limit)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise err from None
    if declared_size is not None and size != declared_size:
        store.delete(location)
        _revert(image_id, "saving")
        raise BadRequest(f"The upload carried {size} bytes, not the {declared_size} announced.")
    return _activate(ctx, image_id, "saving", store, location, size, md5, sha512, found)


def _guard(stream: Iterable[bytes]) -> Iterator[bytes]:
    try:
        yield from stream
    except Exception as exc:
        if type(exc).__name__ == "ClientDisconnect":
            raise UploadAborted() from exc
        raise


def _activate(ctx, image_id: str, from_status: str, store: st.Store, location: str, size: int, md5: str,
              sha512: str, found: dict, extra_props: dict | None = None) -> dict:
    with current().db.session() as sess:
        res = sess.execute(update(m.Image).where(m.Image.id == image_id, m.Image.status == from_status)
                           .values(status="active", size=size, checksum=md5, os_hash_algo=HASH_ALGO,
                                   os_hash_value=sha512, virtual_size=found.get("virtual_size"),
                                   updated_at=utcnow()))
        if res.rowcount != 1:
            gone = sess.get(m.Image, image_id) is None
            sess.rollback()
            store.delete(location)
            if gone:
                raise Gone(f"Image {image_id} could not be found after upload. The image may have been "
                           f"deleted during the upload.")
            raise Conflict(f"Image {image_id} changed status during the upload; the data was discarded.")
        sess.add(m.ImageLocation(image_id=image_id, store=store.id, url=location, meta={}))
        if extra_props:
            set_internal_properties(sess, image_id, extra_props)
        img = sess.get(m.Image, image_id)
        sess.flush()
        payload = event_payload(sess, img)
        body = render_one(sess, img, ctx)
    emit("image.upload", payload, ctx)
    emit("image.activate", payload, ctx)
    return body


# ---------------------------------------------------------------------------- data: download
@dataclass
class Download:
    image: dict
    size: int
    start: int
    length: int
    chunks: Iterator[bytes]


def open_download(ctx, image_id: str, byte_range: tuple[int | None, int | None] | None = None
                  ) -> Download | None:
    """The data to send for `GET /file`: None when the image has no data (204)."""
    with current().db.session() as sess:
        img, member = load(sess, image_id, ctx)
        enforce(ctx, "download_image", target_for(img, member))
        if img.status == "deactivated" and not is_admin(ctx):
            raise Forbidden("The requested image has been deactivated. Image data download is forbidden.")
        locations = locations_of(sess, [img.id])[img.id]
        if img.status not in ("active", "deactivated") or not locations:
            return None
        body = render_one(sess, img, ctx)
    be = backend()
    loc = locations[0]
    size = body["size"] if body["size"] is not None else be.store(loc.store).size(loc.url)
    start, length = 0, size
    if byte_range is not None:
        first, last = byte_range
        if first is None:  # suffix: the last N bytes
            if not last:
                raise RangeNotSatisfiable(size)
            start, length = max(0, size - last), min(last, size)
        else:
            if first >= size:
                raise RangeNotSatisfiable(size)
            end = size - 1 if last is None or last >= size else last
            if end < first:
                raise RangeNotSatisfiable(size)
            start, length = first, end - first + 1
    try:
        chunks = be.store(loc.store).get(loc.url, start, length)
    except st.LocationNotFound:
        raise ApiError(f"The data of image {image_id} is missing from its store.") from None
    return Download(image=body, size=size, start=start, length=length, chunks=chunks)


class RangeNotSatisfiable(ApiError):
    code = 416

    def __init__(self, size: int):
        super().__init__("Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})


def sent(ctx, image: dict, bytes_sent: int, remote: str | None = None) -> None:
    """Telemetry's `image.download`/`image.serve` meters come from this event."""
    emit("image.send", {"image_id": image["id"], "owner_id": image["owner"],
                        "receiver_tenant_id": _project(ctx), "receiver_user_id": getattr(ctx, "user_id", None),
                        "bytes_sent": bytes_sent, "destination_ip": remote}, ctx)


# ---------------------------------------------------------------------------- staging + import
def stage(ctx, image_id: str, stream: Iterable[bytes], declared_size: int | None = None) -> None:
    """`PUT /stage`: the data goes to the staging area; queued -> uploading."""
    if "glance-direct" not in enabled_import_methods():
        raise NotFound("The glance-direct import method is not enabled on this cloud.")
    info, limit, which = _begin_transfer(ctx, image_id, action="upload_image", from_status="queued",
                                         to_status="uploading", declared_size=declared_size)
    try:
        backend().staging.add(image_id, _guard(stream), limit)
    except BaseException as exc:
        backend().staging.delete(image_id)
        _revert(image_id, "uploading")
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise _store_error(exc, which, limit) from None
    with current().db.session() as sess:
        if sess.get(m.Image, image_id) is None:
            backend().staging.delete(image_id)
            raise Gone(f"Image {image_id} was deleted while its data was being staged.")


def import_image(ctx, image_id: str, body: Any, request_id: str | None = None) -> None:
    """`POST /import`: start an asynchronous import task (202)."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    method = body.get("method")
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise BadRequest("Invalid input for field 'method': it must be an object with a 'name'.")
    name = method["name"]
    if name not in enabled_import_methods():
        raise BadRequest(f"Import method {name} is not valid or not enabled on this cloud; available: "
                         f"{', '.join(enabled_import_methods())}.")
    be = backend()
    stores_req = body.get("stores")
    all_stores = body.get("all_stores")
    if stores_req is not None and (not isinstance(stores_req, list)
                                   or not all(isinstance(s, str) for s in stores_req)):
        raise BadRequest("Invalid input for field 'stores': it must be a list of store ids.")
    if all_stores is not None and not isinstance(all_stores, bool):
        raise BadRequest("Invalid input for field 'all_stores': it must be a boolean.")
    if stores_req and all_stores:
        raise BadRequest("all_stores and stores cannot be given together.")
    for s in stores_req or ():
        if s not in be.stores:
            raise BadRequest(f"Unknown store: {s}")
    targets = list(be.stores) if all_stores else (stores_req or [be.default.id])
    with current().db.session() as sess:
        img, member = load(sess, image_id, ctx)
        target = target_for(img, member)
        if name == "copy-image":
            enforce(ctx, "copy_image", target)
            if img.status != "active":
                raise Conflict(f"Image {img.id} is not active: only active images can be copied.")
            have = {loc.store for loc in locations_of(sess, [img.id])[img.id]}
            targets = [s for s in targets if s not in have]
            from_status = "active"
        else:
            enforce(ctx, "modify_image", target)
            _require_formats(img)
            if name == "glance-direct":
                if img.status != "uploading" or not be.staging.exists(img.id):
                    raise Conflict("Image needs to be staged before 'glance-direct' method can be used")
                from_status = "uploading"
            else:  # web-download
                uri = method.get("uri")
                if img.status != "queued":
                    raise Conflict(f"Image status transition from {img.status} to importing is not allowed")
                _check_download_uri(uri)
                from_status = "queued"
            res = sess.execute(update(m.Image).where(m.Image.id == img.id, m.Image.status == from_status)
                               .values(status="importing", updated_at=utcnow()))
            if res.rowcount != 1:
                raise Conflict(f"Image {img.id} changed status; try the import again.")
        task = m.ImageTask(id=str(uuid.uuid4()), type="api_image_import", status="processing",
                           owner=_project(ctx) or img.owner, image_id=img.id, request_id=request_id,
                           user_id=getattr(ctx, "user_id", None),
                           input={"image_id": img.id, "import_req": body, "backend": targets},
                           result=None, message="", created_at=utcnow(), updated_at=utcnow(),
                           expires_at=utcnow() + dt.timedelta(hours=48))
        sess.add(task)
        set_internal_properties(sess, img.id, {"os_glance_import_task": task.id,
                                               "os_glance_importing_to_stores": ",".join(targets),
                                               "os_glance_failed_import": ""})
        task_id = task.id
    current().tasks.submit(f"image-import-{name}", _run_import, ctx, image_id, task_id, name, method,
                           targets, from_status)


def _check_download_uri(uri: Any) -> None:
    from urllib.parse import urlsplit

    if not isinstance(uri, str) or not uri:
        raise BadRequest("The web-download method needs a 'uri'.")
    parts = urlsplit(uri)
    ports = {p.strip() for p in conf("import_filtering_opts", "allowed_ports").split(",") if p.strip()}
    port = str(parts.port or (443 if parts.scheme == "https" else 80))
    if (parts.scheme not in ("http", "https") or (parts.hostname or "").lower() not in _allowed_hosts()
            or (ports and port not in ports)):
        raise BadRequest(f"URI for web-download does not pass filtering: {uri}")


def _finish_task(task_id: str, status: str, message: str = "", result: dict | None = None) -> None:
    with current().db.session() as sess:
        task = sess.get(m.ImageTask, task_id)
        if task is not None:
            task.status, task.message, task.result, task.updated_at = status, message, result, utcnow()


def _run_import(ctx, image_id: str, task_id: str, method: str, method_body: dict, targets: list[str],
                from_status: str) -> None:
    be = backend()
    try:
        if method == "copy-image":
            _copy_to_stores(image_id, targets)
            with current().db.session() as sess:
                if sess.get(m.Image, image_id) is not None:
                    set_internal_properties(sess, image_id, {"os_glance_importing_to_stores": ""})
            _finish_task(task_id, "success", result={"image_id": image_id})
            return
        store = be.store(targets[0]) if targets else be.default
        with current().db.session() as sess:
            img = sess.get(m.Image, image_id)
            if img is None:
                raise Gone(f"Image {image_id} was deleted during the import.")
            limit, which = size_limit_for(sess, img.owner)
            disk_format = img.disk_format
        verify, found = _format_check(disk_format)
        if method == "glance-direct":
            stream = st.read_file(be.staging.path(image_id))
        else:
            stream = _web_stream(method_body["uri"])
        try:
            location, size, md5, sha512 = store.add(image_id, stream, limit, verify)
        except st.SizeLimitExceeded:
            raise _too_large(which, limit) from None
        extra_stores = [s for s in targets if s != store.id]
        _activate(ctx, image_id, "importing", store, location, size, md5, sha512, found,
                  extra_props={"os_glance_importing_to_stores": ",".join(extra_stores),
                               "os_glance_failed_import": ""})
        be.staging.delete(image_id)
        if extra_stores:
            _copy_to_stores(image_id, extra_stores)
            with current().db.session() as sess:
                set_internal_properties(sess, image_id, {"os_glance_importing_to_stores": ""})
        _finish_task(task_id, "success", result={"image_id": image_id})
    except Exception as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc) or type(exc).__name__
        log.warning("import of image %s (%s) failed: %s", image_id, method, message)
        be.staging.delete(image_id)
        if method != "copy-image":
            _revert(image_id, "importing", "queued",
                    {"os_glance_importing_to_stores": "", "os_glance_failed_import": ",".join(targets)})
        else:
            with current().db.session() as sess:
                if sess.get(m.Image, image_id) is not None:
                    set_internal_properties(sess, image_id, {"os_glance_importing_to_stores": "",
                                                             "os_glance_failed_import": ",".join(targets)})
        _finish_task(task_id, "failure", message=message)


def _copy_to_stores(image_id: str, targets: list[str]) -> None:
    be = backend()
    with current().db.session() as sess:
        locs = locations_of(sess, [image_id])[image_id]
    if not locs:
        raise ApiError(f"Image {image_id} has no data to copy.")
    src = locs[0]
    for target in targets:
        store = be.store(target)
        location, *_ = store.add(image_id, be.store(src.store).get(src.url))
        with current().db.session() as sess:
            if sess.get(m.Image, image_id) is None:
                store.delete(location)
                raise Gone(f"Image {image_id} was deleted during the copy.")
            sess.add(m.ImageLocation(image_id=image_id, store=store.id, url=location, meta={}))


def _web_stream(uri: str) -> Iterator[bytes]:
    import urllib.request

    class CheckedRedirects(urllib.request.HTTPRedirectHandler):
        # A redirect must pass the same filter, or the allow-list would be one hop deep.
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            _check_download_uri(newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    _check_download_uri(uri)
    opener = urllib.request.build_opener(CheckedRedirects)
    with opener.open(uri, timeout=60) as resp:  # scheme, host and port allow-listed
        while True:
            data = resp.read(st.CHUNK)
            if not data:
                return
            yield data


# ---------------------------------------------------------------------------- tasks
def render_task(task: m.ImageTask) -> dict:
    return {"id": task.id, "type": task.type, "status": task.status, "owner": task.owner,
            "input": task.input, "result": task.result, "message": task.message,
            "image_id": task.image_id, "request_id": task.request_id, "user_id": task.user_id,
            "created_at": fmt_time(task.created_at), "updated_at": fmt_time(task.updated_at),
            "expires_at": fmt_time(task.expires_at), "self": f"/v2/tasks/{task.id}",
            "schema": "/v2/schemas/task"}


def image_tasks(sess: Session, ctx, image_id: str) -> list[dict]:
    img, member = load(sess, image_id, ctx)
    enforce(ctx, "get_image", target_for(img, member))
    rows = sess.execute(select(m.ImageTask).where(m.ImageTask.image_id == img.id)
                        .order_by(m.ImageTask.created_at.desc())).scalars()
    return [render_task(t) for t in rows]


# ---------------------------------------------------------------------------- public interface
def get_image(image_id: str, ctx: AuthContext | None = None) -> dict:
    with current().db.session() as sess:
        img, member = load(sess, image_id, ctx)
        enforce(ctx, "get_image", target_for(img, member))
        return render_one(sess, img, ctx)


def open_image_data(image_id: str, ctx: AuthContext | None = None) -> tuple[dict, Iterator[bytes]]:
    dl = open_download(ctx, image_id)
    if dl is None:
        raise Conflict(f"Image {image_id} has no data.")
    return dl.image, dl.chunks


def create_image(ctx: AuthContext | None, meta: dict) -> dict:
    with current().db.session() as sess:
        img = create(sess, ctx, meta)
        return render_one(sess, img, ctx)


def upload_image(ctx: AuthContext | None, image_id: str, stream: Iterable[bytes], size: int | None = None) -> dict:
    return upload(ctx, image_id, stream, size)


def create_image_from_stream(ctx: AuthContext | None, meta: dict, stream: Iterable[bytes],
                             size: int | None = None) -> dict:
    """Compute's snapshots: a new image filled from `stream` (deleted again if the upload fails)."""
    image = create_image(ctx, meta)
    try:
        return upload(ctx, image["id"], stream, size)
    except BaseException:
        try:
            delete_image(None, image["id"])
        except Exception:
            log.exception("could not remove image %s after its upload failed", image["id"])
        raise
