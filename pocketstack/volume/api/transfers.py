"""Volume transfers: `/os-volume-transfer` (all microversions) and `/volume-transfers`
(3.55+, with `no_snapshots`; 3.57 adds the project ids and `accepted` to the view; 3.59
pagination and sorting of the lists)."""
from __future__ import annotations

from sqlalchemy import select

from pocketstack.common import pagination
from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.volume import transfers, volumes
from pocketstack.volume import models as m
from pocketstack.volume.api.common import at_least, body_of, project_url, route, session

PREFIXES = ("/os-volume-transfer", "/volume-transfers")


def _base(req) -> str:
    return "volume-transfers" if "/volume-transfers" in req.raw.url.path else "os-volume-transfer"


def _check_path(req) -> None:
    if _base(req) == "volume-transfers" and not at_least(req, "3.55"):
        raise NotFound("The resource could not be found.")


def _links(req, transfer_id: str) -> list[dict]:
    link = f"{project_url(req)}/{_base(req)}/{transfer_id}"
    return [{"rel": "self", "href": link}, {"rel": "bookmark", "href": link}]


def summary(req, tr: m.Transfer) -> dict:
    return {"id": tr.id, "name": tr.name, "volume_id": tr.volume_id, "links": _links(req, tr.id)}


def detail(req, tr: m.Transfer, *, accepted: bool = False, destination: str | None = None) -> dict:
    body = {**summary(req, tr), "created_at": tr.created_at}
    if at_least(req, "3.55"):
        body["no_snapshots"] = tr.no_snapshots
    if at_least(req, "3.57"):
        body.update(source_project_id=tr.source_project_id, destination_project_id=destination,
                    accepted=accepted)
    return body


def _register(path: str, methods, fn):
    for prefix in PREFIXES:
        route(prefix + path, methods)(fn)


def create_transfer(req):
    _check_path(req)
    body = body_of(req, "transfer")
    transfer_id, key = transfers.create(req.context, body, no_snapshots_allowed=at_least(req, "3.55"))
    with session() as sess:
        out = detail(req, sess.get(m.Transfer, transfer_id))
    out["auth_key"] = key
    return 202, {"transfer": out}


def _list(req, with_detail: bool):
    """3.59 adds Cinder's pagination: `limit` / `marker` / `offset` and `sort` (or
    `sort_key` / `sort_dir`) on created_at, id, name, volume_id."""
    _check_path(req)
    query = dict(req.query.items())
    paged = at_least(req, "3.59")
    limit = pagination.parse_limit(query.pop("limit", None), max_limit=1000) if paged else None
    marker, offset = (query.pop("marker", None), query.pop("offset", None)) if paged else (None, None)
    with session() as sess:
        items = transfers.list_transfers(sess, req.context, query)
        if paged:
            order = volumes.sort_order(query, m.Transfer, {"created_at", "id", "name", "volume_id"})
            items = list(sess.execute(select(m.Transfer).where(m.Transfer.id.in_([t.id for t in items]))
                                      .order_by(*order)).scalars())
            try:
                items, more = pagination.offset_page(items, limit=limit, marker=marker, offset=offset,
                                                     key=lambda t: t.id)
            except BadRequest:
                raise NotFound(f"Marker {marker} could not be found.") from None
        body = {"transfers": [detail(req, t) if with_detail else summary(req, t) for t in items]}
        if paged and more and items:
            body["transfers_links"] = [{"rel": "next", "href": pagination.next_link(
                f"{project_url(req)}/{_base(req)}" + ("/detail" if with_detail else ""),
                list(req.query.multi_items()), items[-1].id)}]
        return body


def list_transfers(req):
    return _list(req, False)


def list_transfers_detail(req):
    return _list(req, True)


def show_transfer(req):
    _check_path(req)
    with session() as sess:
        return {"transfer": detail(req, transfers.load(sess, req.context, req.path_params["transfer_id"]))}


def delete_transfer(req):
    _check_path(req)
    with session() as sess:
        transfers.delete(sess, req.context, req.path_params["transfer_id"])
    return 202, None


def accept_transfer(req):
    _check_path(req)
    body = req.json_object()
    accept = body.get("accept")
    if not isinstance(accept, dict):
        raise BadRequest("Missing required element 'accept' in request body.")
    done = transfers.accept(req.context, req.path_params["transfer_id"], accept.get("auth_key"))
    return 202, {"transfer": summary(req, done)}


_register("", "POST", create_transfer)
_register("", "GET", list_transfers)
_register("/detail", "GET", list_transfers_detail)
_register("/{transfer_id}", "GET", show_transfer)
_register("/{transfer_id}", "DELETE", delete_transfer)
_register("/{transfer_id}/accept", "POST", accept_transfer)
