"""Flavors: the sizes servers are built with, their extra specs and who may use private ones.

The public Python interface other compute modules use:

- `get_flavor(ctx, flavor_id)` -> `FlavorInfo` or `FlavorNotFound` (404). A private flavor
  is invisible (404) to a non-admin project without access, as in Nova.
- `get_flavor_for_boot(ctx, flavor_ref)` -> `FlavorInfo`, raising Nova's 400s for server
  create / resize ("Flavor ... could not be found.", "Flavor is disabled.").
- `FlavorInfo.snapshot()` -> the dict an instance keeps (the 2.47+ embedded flavor).

Every write emits `compute.flavor.*` events. Admin-only checks are policy's job (api/).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError

from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest, Conflict, NotFound
from pocketstack.common.events import emit
from pocketstack.common.runtime import current
from pocketstack.compute.models import Flavor, FlavorExtraSpec, FlavorProject

MAX_INT = 2147483647
SQL_SP_FLOAT_MAX = 3.40282e38

# The install guide's flavors ("launch an instance"), created on every start if missing.
DEFAULT_FLAVORS = (
    ("1", "m1.tiny", 512, 1, 1),
    ("2", "m1.small", 2048, 20, 1),
    ("3", "m1.medium", 4096, 40, 2),
    ("4", "m1.large", 8192, 80, 4),
    ("5", "m1.xlarge", 16384, 160, 8),
)


class FlavorNotFound(NotFound):
    def __init__(self, flavor_id: str):
        super().__init__(f"Flavor {flavor_id} could not be found.")
        self.flavor_id = flavor_id


@dataclass(frozen=True)
class FlavorInfo:
    """A flavor as read at one moment, independent of any session."""

    id: str  # the public flavor id ("1", a uuid, ...)
    name: str
    ram: int
    vcpus: int
    disk: int
    ephemeral: int
    swap: int
    rxtx_factor: float
    is_public: bool
    disabled: bool
    description: str | None
    extra_specs: dict = field(default_factory=dict)
    internal_id: int = 0
    created_at: object = None

    def snapshot(self) -> dict:
        """What an instance stores about its flavor (it survives the flavor's deletion)."""
        return {"flavorid": self.id, "name": self.name, "memory_mb": self.ram, "vcpus": self.vcpus,
                "root_gb": self.disk, "ephemeral_gb": self.ephemeral, "swap": self.swap,
                "rxtx_factor": self.rxtx_factor, "is_public": self.is_public,
                "description": self.description, "extra_specs": dict(self.extra_specs)}


def _session():
    return current().db.session()


def _info(row: Flavor, specs: dict) -> FlavorInfo:
    return FlavorInfo(id=row.flavorid, name=row.name, ram=row.memory_mb, vcpus=row.vcpus,
                      disk=row.root_gb, ephemeral=row.ephemeral_gb, swap=row.swap,
                      rxtx_factor=float(row.rxtx_factor), is_public=row.is_public,
                      disabled=row.disabled, description=row.description, extra_specs=specs,
                      internal_id=row.id, created_at=row.created_at)


def _specs(sess, internal_ids: list[int]) -> dict[int, dict]:
    out: dict[int, dict] = {i: {} for i in internal_ids}
    if internal_ids:
        for spec in sess.scalars(select(FlavorExtraSpec).where(FlavorExtraSpec.flavor_id.in_(internal_ids))):
            out[spec.flavor_id][spec.key] = spec.value
    return out


def _visible(ctx, sess, row: Flavor) -> bool:
    if row.is_public or ctx is None or ctx.is_admin:
        return True
    return sess.get(FlavorProject, (row.id, ctx.project_id)) is not None


def _row(sess, flavor_id: str) -> Flavor | None:
    return sess.scalar(select(Flavor).where(Flavor.flavorid == str(flavor_id)))


def get_flavor(ctx, flavor_id: str) -> FlavorInfo:
    """The flavor with public id `flavor_id`, as `ctx` may see it (None ctx = internal use)."""
    with _session() as sess:
        row = _row(sess, flavor_id)
        if row is None or not _visible(ctx, sess, row):
            raise FlavorNotFound(flavor_id)
        return _info(row, _specs(sess, [row.id])[row.id])


def get_flavor_for_boot(ctx, flavor_ref) -> FlavorInfo:
    """The flavor a server create or resize asks for, with Nova's 400s."""
    ref = str(flavor_ref).rstrip("/").rsplit("/", 1)[-1] if flavor_ref is not None else ""
    try:
        flavor = get_flavor(ctx, ref)
    except FlavorNotFound:
        raise BadRequest(f"Flavor {ref} could not be found.") from None
    if flavor.disabled:
        raise BadRequest("Flavor is disabled.")
    return flavor


SORT_KEYS = {"created_at": Flavor.created_at, "description": Flavor.description, "disabled": Flavor.disabled,
             "ephemeral_gb": Flavor.ephemeral_gb, "flavorid": Flavor.flavorid, "id": Flavor.id,
             "is_public": Flavor.is_public, "memory_mb": Flavor.memory_mb, "name": Flavor.name,
             "root_gb": Flavor.root_gb, "rxtx_factor": Flavor.rxtx_factor, "swap": Flavor.swap,
             "updated_at": Flavor.updated_at, "vcpu_weight": Flavor.vcpu_weight, "vcpus": Flavor.vcpus}


def list_flavors(ctx, *, is_public: bool | None = True, min_ram: int | None = None,
                 min_disk: int | None = None, sort_key: str = "flavorid", sort_dir: str = "asc",
                 limit: int | None = None, marker: str | None = None, name: str | None = None) -> list[FlavorInfo]:
    """Flavors as Nova lists them. Non-admins always get public, enabled flavors plus the
    private ones their project may use; `is_public=None` (admins only) means all."""
    with _session() as sess:
        q = select(Flavor)
        admin = ctx is None or ctx.is_admin
        if not admin:
            is_public = True
            q = q.where(Flavor.disabled.is_(False))
        if is_public is True:
            cond = [Flavor.is_public.is_(True)]
            if ctx is not None and ctx.project_id:
                cond.append(Flavor.id.in_(select(FlavorProject.flavor_id)
                                          .where(FlavorProject.project_id == ctx.project_id)))
            q = q.where(or_(*cond))
        elif is_public is False:
            q = q.where(Flavor.is_public.is_(False))
        if min_ram is not None:
            q = q.where(Flavor.memory_mb >= min_ram)
        if min_disk is not None:
            q = q.where(Flavor.root_gb >= min_disk)
        if name is not None:
            q = q.where(Flavor.name == name)
        col = SORT_KEYS[sort_key]
        order = [col.desc() if sort_dir == "desc" else col.asc()]
        if sort_key != "id":
            order.append(Flavor.id.desc() if sort_dir == "desc" else Flavor.id.asc())
        rows = list(sess.scalars(q.order_by(*order)))
        if marker is not None:
            ids = [r.flavorid for r in rows]
            if marker not in ids:
                # The marker may exist but be filtered out: Nova still pages after it only
                # when it is in the listed set, otherwise 400.
                raise BadRequest(f"marker [{marker}] not found")
            rows = rows[ids.index(marker) + 1:]
        if limit is not None:
            rows = rows[:limit]
        specs = _specs(sess, [r.id for r in rows])
        return [_info(r, specs[r.id]) for r in rows]


# ---------------------------------------------------------------------------- writes
def create_flavor(ctx, *, name: str, ram: int, vcpus: int, disk: int, flavorid: str | None = None,
                  ephemeral: int = 0, swap: int = 0, rxtx_factor: float = 1.0, is_public: bool = True,
                  description: str | None = None, extra_specs: dict | None = None,
                  emit_event: bool = True) -> FlavorInfo:
    if flavorid is None or flavorid == "auto":
        flavorid = str(uuid.uuid4())
    with _session() as sess:
        if sess.scalar(select(Flavor.id).where(Flavor.name == name)) is not None:
            raise Conflict(f"Flavor with name {name} already exists.")
        if _row(sess, flavorid) is not None:
            raise Conflict(f"Flavor with ID {flavorid} already exists.")
        row = Flavor(flavorid=flavorid, name=name, memory_mb=ram, vcpus=vcpus, root_gb=disk,
                     ephemeral_gb=ephemeral, swap=swap, rxtx_factor=rxtx_factor, is_public=is_public,
                     description=description, disabled=False, created_at=utcnow())
        sess.add(row)
        sess.flush()
        for key, value in (extra_specs or {}).items():
            sess.add(FlavorExtraSpec(flavor_id=row.id, key=key, value=value))
        info = _info(row, dict(extra_specs or {}))
    if emit_event:
        emit("compute.flavor.create", {"flavor_id": flavorid, "name": name}, context=ctx)
    return info


def update_description(ctx, flavor_id: str, description: str | None) -> FlavorInfo:
    with _session() as sess:
        row = _row(sess, flavor_id)
        if row is None:
            raise FlavorNotFound(flavor_id)
        row.description = description
        row.updated_at = utcnow()
        info = _info(row, _specs(sess, [row.id])[row.id])
    emit("compute.flavor.update", {"flavor_id": flavor_id}, context=ctx)
    return info


def delete_flavor(ctx, flavor_id: str) -> None:
    with _session() as sess:
        row = _row(sess, flavor_id)
        if row is None:
            raise FlavorNotFound(flavor_id)
        sess.execute(delete(FlavorExtraSpec).where(FlavorExtraSpec.flavor_id == row.id))
        sess.execute(delete(FlavorProject).where(FlavorProject.flavor_id == row.id))
        sess.delete(row)
    emit("compute.flavor.delete", {"flavor_id": flavor_id}, context=ctx)


# ---------------------------------------------------------------------------- extra specs
def set_extra_specs(ctx, flavor_id: str, specs: dict[str, str]) -> dict:
    with _session() as sess:
        row = _row(sess, flavor_id)
        if row is None:
            raise FlavorNotFound(flavor_id)
        for key, value in specs.items():
            existing = sess.get(FlavorExtraSpec, (row.id, key))
            if existing is None:
                sess.add(FlavorExtraSpec(flavor_id=row.id, key=key, value=value))
            else:
                existing.value = value
        row.updated_at = utcnow()
    emit("compute.flavor.update", {"flavor_id": flavor_id, "extra_specs": sorted(specs)}, context=ctx)
    return specs


def delete_extra_spec(ctx, flavor_id: str, key: str) -> None:
    with _session() as sess:
        row = _row(sess, flavor_id)
        if row is None:
            raise FlavorNotFound(flavor_id)
        spec = sess.get(FlavorExtraSpec, (row.id, key))
        if spec is None:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        sess.delete(spec)
    emit("compute.flavor.update", {"flavor_id": flavor_id, "deleted_extra_spec": key}, context=ctx)


# ---------------------------------------------------------------------------- access
def access_list(flavor_id: str) -> list[str]:
    with _session() as sess:
        row = _row(sess, flavor_id)
        if row is None:
            raise FlavorNotFound(flavor_id)
        if row.is_public:
            raise NotFound("Access list not available for public flavors.")
        return sorted(sess.scalars(select(FlavorProject.project_id).where(FlavorProject.flavor_id == row.id)))


def add_access(ctx, flavor_id: str, project_id: str) -> list[str]:
    with _session() as sess:
        row = _row(sess, flavor_id)
        if row is None:
            raise FlavorNotFound(flavor_id)
        if row.is_public:
            raise Conflict("Can not add access to a public flavor.")
        if sess.get(FlavorProject, (row.id, project_id)) is not None:
            raise Conflict(f"Flavor access already exists for flavor {flavor_id} and project "
                           f"{project_id} combination.")
        sess.add(FlavorProject(flavor_id=row.id, project_id=project_id))
    emit("compute.flavor.update", {"flavor_id": flavor_id, "added_project": project_id}, context=ctx)
    return access_list(flavor_id)


def remove_access(ctx, flavor_id: str, project_id: str) -> list[str]:
    with _session() as sess:
        row = _row(sess, flavor_id)
        if row is None:
            raise FlavorNotFound(flavor_id)
        grant = sess.get(FlavorProject, (row.id, project_id))
        if grant is None:
            raise NotFound(f"Flavor access not found for {flavor_id} / {project_id} combination.")
        sess.delete(grant)
    emit("compute.flavor.update", {"flavor_id": flavor_id, "removed_project": project_id}, context=ctx)
    return access_list(flavor_id)


# ---------------------------------------------------------------------------- bootstrap
def ensure_default_flavors() -> None:
    """The guide's m1.* flavors, created on a cloud's first start (when there are no flavors
    at all): an operator who later deletes or replaces them is not overruled on restart."""
    try:
        with _session() as sess:
            if sess.scalar(select(Flavor.id).limit(1)) is not None:
                return
            for fid, name, ram, disk, vcpus in DEFAULT_FLAVORS:
                sess.add(Flavor(flavorid=fid, name=name, memory_mb=ram, vcpus=vcpus, root_gb=disk,
                                ephemeral_gb=0, swap=0, rxtx_factor=1.0, is_public=True,
                                disabled=False, created_at=utcnow()))
    except IntegrityError:  # another controller bootstrapped at the same moment
        pass


