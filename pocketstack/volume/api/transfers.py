"""Volume transfers: `/os-volume-transfer` (all microversions) and `/volume-transfers`
(3.55+, with `no_snapshots`; 3.57 adds the project ids and `accepted` to the view)."""
from __future__ import annotations

from pocketstack.common.errors import BadRequest, NotFound
from pocketstack.volume import transfers
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
    _check_path(req)
    with session() as sess:
        items = transfers.list_transfers(sess, req.context, dict(req.query.items()))
        return {"transfers": [detail(req, t) if with_detail else summary(req, t) for t in items]}


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
