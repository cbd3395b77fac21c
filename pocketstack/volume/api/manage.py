"""Manage / unmanage: `POST /os-volume-manage`, the manageable-volumes listings
(`/manageable_volumes` 3.8+, and the older `/os-volume-manage` GET) and the volume action
`os-unmanage` (registered on the volume actions table); the same for snapshots
(`/os-snapshot-manage`, `/manageable_snapshots` 3.8+, snapshot action `os-unmanage`)."""
from __future__ import annotations

from pocketstack.common import pagination
from pocketstack.common.errors import NotFound
from pocketstack.volume import manage, snapshot_manage
from pocketstack.volume import snapshots
from pocketstack.volume.api import volumes as volumes_api
from pocketstack.volume.api.common import at_least, body_of, route, session
from pocketstack.volume import models as m


@route("/os-volume-manage", "POST")
def manage_volume(req):
    return _manage(req)


@route("/manageable_volumes", "POST")
def manage_volume_3_8(req):
    if not at_least(req, "3.8"):
        raise NotFound("The resource could not be found.")
    return _manage(req)


def _manage(req):
    body = body_of(req, "volume")
    volume_id = manage.manage(req.context, body)
    with session() as sess:
        return 202, {"volume": volumes_api.render(sess, req, sess.get(m.Volume, volume_id))}


def _listing(req, detail: bool, snapshots: bool = False):
    items = (snapshot_manage if snapshots else manage).manageable(req.context, req.query.get("host"))
    limit = pagination.parse_limit(req.query.get("limit"), max_limit=1000)
    page, _ = pagination.offset_page(items, limit=limit, marker=req.query.get("marker"),
                                     offset=req.query.get("offset"), key=lambda i: i["reference"]["source-name"])
    if not detail:
        keys = ("reference", "size", "safe_to_manage") + (("source_reference",) if snapshots else ())
        page = [{k: i[k] for k in keys} for i in page]
    return {"manageable-snapshots" if snapshots else "manageable-volumes": page}


@route("/manageable_volumes", "GET")
def manageable(req):
    if not at_least(req, "3.8"):
        raise NotFound("The resource could not be found.")
    return _listing(req, False)


@route("/manageable_volumes/detail", "GET")
def manageable_detail(req):
    if not at_least(req, "3.8"):
        raise NotFound("The resource could not be found.")
    return _listing(req, True)


@route("/os-volume-manage", "GET")
def manageable_legacy(req):
    return _listing(req, False)


@route("/os-volume-manage/detail", "GET")
def manageable_legacy_detail(req):
    return _listing(req, True)


def _unmanage(req, volume_id, args):
    manage.unmanage(req.context, volume_id)
    return 202, None


volumes_api.ACTIONS["os-unmanage"] = _unmanage


# ---------------------------------------------------------------------------- snapshots
def _manage_snapshot(req):
    snapshot_id = snapshot_manage.manage_snapshot(req.context, body_of(req, "snapshot"))
    with session() as sess:
        snap = sess.get(m.Snapshot, snapshot_id)
        # Cinder answers with its basic snapshot view, whatever the microversion
        view = {k: getattr(snap, k) for k in ("id", "name", "description", "volume_id", "size", "status",
                                              "created_at", "updated_at")}
        return 202, {"snapshot": {**view, "metadata": snapshots.metadata_of(sess, [snap.id])[snap.id]}}


@route("/os-snapshot-manage", "POST")
def manage_snapshot(req):
    return _manage_snapshot(req)


@route("/manageable_snapshots", "POST")
def manage_snapshot_3_8(req):
    if not at_least(req, "3.8"):
        raise NotFound("The resource could not be found.")
    return _manage_snapshot(req)


@route("/manageable_snapshots", "GET")
def manageable_snapshots(req):
    if not at_least(req, "3.8"):
        raise NotFound("The resource could not be found.")
    return _listing(req, False, snapshots=True)


@route("/manageable_snapshots/detail", "GET")
def manageable_snapshots_detail(req):
    if not at_least(req, "3.8"):
        raise NotFound("The resource could not be found.")
    return _listing(req, True, snapshots=True)


@route("/os-snapshot-manage", "GET")
def manageable_snapshots_legacy(req):
    return _listing(req, False, snapshots=True)


@route("/os-snapshot-manage/detail", "GET")
def manageable_snapshots_legacy_detail(req):
    return _listing(req, True, snapshots=True)
