"""Domain configuration (`/v3/domains/{domain_id}/config...`, `/v3/domains/config/.../default`)
and OS-OAUTH1 consumers (`/v3/OS-OAUTH1/consumers`)."""
from __future__ import annotations

from starlette.responses import Response

from pocketstack.identity import core, domain_config, oauth1
from pocketstack.identity.api.common import api, body_of, enforce, listing, session, v3_url


def _config_body(req) -> object:
    data = req.json_object()
    return data.get("config")


def _params(req) -> tuple[str, str | None, str | None]:
    p = req.path_params
    return p["domain_id"], p.get("group"), p.get("option")


def _domain_target(domain_id: str) -> dict:
    return {"domain": {"id": domain_id}, "domain_id": domain_id}


# ---------------------------------------------------------------------------- defaults
# Declared before the per-domain routes: `/v3/domains/config/{group}/default` must not be
# read as the config of a domain whose id is "config".
@api.route("/v3/domains/config/default", "GET")
@api.route("/v3/domains/config/{group}/default", "GET")
@api.route("/v3/domains/config/{group}/{option}/default", "GET")
def show_default_config(req):
    enforce(req, "identity:get_domain_config_default")
    p = req.path_params
    return {"config": domain_config.get_default(p.get("group"), p.get("option"))}


# ---------------------------------------------------------------------------- per domain
@api.route("/v3/domains/{domain_id}/config", "PUT")
def create_domain_config(req):
    domain_id = req.path_params["domain_id"]
    enforce(req, "identity:create_domain_config", _domain_target(domain_id))
    config = _config_body(req)
    with session() as sess:
        out, created = domain_config.create_config(sess, domain_id, config)
    core.emit("domain_config.created" if created else "domain_config.updated", domain_id, req.context)
    return (201 if created else 200), {"config": out}


@api.route("/v3/domains/{domain_id}/config", "GET")
@api.route("/v3/domains/{domain_id}/config/{group}", "GET")
@api.route("/v3/domains/{domain_id}/config/{group}/{option}", "GET")
def show_domain_config(req):
    domain_id, group, option = _params(req)
    if group == domain_config.SECURITY_COMPLIANCE:
        enforce(req, "identity:get_security_compliance_domain_config", _domain_target(domain_id))
        with session() as sess:
            return {"config": domain_config.get_security_compliance(sess, domain_id, option)}
    enforce(req, "identity:get_domain_config", _domain_target(domain_id))
    with session() as sess:
        return {"config": domain_config.get_config(sess, domain_id, group, option)}


@api.route("/v3/domains/{domain_id}/config", "PATCH")
@api.route("/v3/domains/{domain_id}/config/{group}", "PATCH")
@api.route("/v3/domains/{domain_id}/config/{group}/{option}", "PATCH")
def update_domain_config(req):
    domain_id, group, option = _params(req)
    enforce(req, "identity:update_domain_config", _domain_target(domain_id))
    config = _config_body(req)
    with session() as sess:
        out = domain_config.update_config(sess, domain_id, config, group, option)
    core.emit("domain_config.updated", domain_id, req.context)
    return {"config": out}


@api.route("/v3/domains/{domain_id}/config", "DELETE")
@api.route("/v3/domains/{domain_id}/config/{group}", "DELETE")
@api.route("/v3/domains/{domain_id}/config/{group}/{option}", "DELETE")
def delete_domain_config(req):
    domain_id, group, option = _params(req)
    enforce(req, "identity:delete_domain_config", _domain_target(domain_id))
    with session() as sess:
        domain_config.delete_config(sess, domain_id, group, option)
    core.emit("domain_config.deleted", domain_id, req.context)
    return Response(status_code=204)


# ---------------------------------------------------------------------------- OS-OAUTH1 consumers
def _fmt_consumer(req, c, secret: str | None = None) -> dict:
    out = {**oauth1.fmt(c), "links": {"self": v3_url(req, f"OS-OAUTH1/consumers/{c.id}")}}
    if secret is not None:
        out["secret"] = secret
    return out


@api.route("/v3/OS-OAUTH1/consumers", "GET")
def list_consumers(req):
    enforce(req, "identity:list_consumers")
    with session() as sess:
        items = [_fmt_consumer(req, c) for c in oauth1.list_consumers(sess)]
    return listing(req, "consumers", items)


@api.route("/v3/OS-OAUTH1/consumers", "POST")
def create_consumer(req):
    enforce(req, "identity:create_consumer")
    data = body_of(req, "consumer")
    with session() as sess:
        c, secret = oauth1.create_consumer(sess, data)
        out = _fmt_consumer(req, c, secret)
    core.emit("OS-OAUTH1:consumer.created", out["id"], req.context)
    return 201, {"consumer": out}


@api.route("/v3/OS-OAUTH1/consumers/{consumer_id}", "GET")
def show_consumer(req):
    enforce(req, "identity:get_consumer")
    with session() as sess:
        return {"consumer": _fmt_consumer(req, oauth1.get_consumer(sess, req.path_params["consumer_id"]))}


@api.route("/v3/OS-OAUTH1/consumers/{consumer_id}", "PATCH")
def update_consumer(req):
    enforce(req, "identity:update_consumer")
    data = body_of(req, "consumer")
    consumer_id = req.path_params["consumer_id"]
    with session() as sess:
        out = _fmt_consumer(req, oauth1.update_consumer(sess, consumer_id, data))
    core.emit("OS-OAUTH1:consumer.updated", consumer_id, req.context)
    return {"consumer": out}


@api.route("/v3/OS-OAUTH1/consumers/{consumer_id}", "DELETE")
def delete_consumer(req):
    enforce(req, "identity:delete_consumer")
    consumer_id = req.path_params["consumer_id"]
    with session() as sess:
        oauth1.delete_consumer(sess, consumer_id)
    core.emit("OS-OAUTH1:consumer.deleted", consumer_id, req.context)
    return Response(status_code=204)
