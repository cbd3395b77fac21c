"""`/v2/metadefs/*`: metadata definition namespaces, objects, properties, tags, resource types."""
from __future__ import annotations

from pocketstack.image import metadefs as md
from pocketstack.image import models as m
from pocketstack.image.api.common import api, session

NS = "/v2/metadefs/namespaces/{namespace}"


@api.route("/v2/metadefs/resource_types", "GET")
def list_resource_types(req):
    with session() as sess:
        return {"resource_types": md.list_resource_types(sess, req.context)}


@api.route("/v2/metadefs/namespaces", "GET")
def list_namespaces(req):
    with session() as sess:
        return {"namespaces": md.list_namespaces(sess, req.context, req.query),
                "first": "/v2/metadefs/namespaces", "schema": "/v2/schemas/metadefs/namespaces"}


@api.route("/v2/metadefs/namespaces", "POST")
def create_namespace(req):
    with session() as sess:
        ns = md.create_namespace(sess, req.context, req.json)
        return 201, md.render_namespace(sess, ns)


@api.route(NS, "GET")
def show_namespace(req):
    with session() as sess:
        ns = md.get_namespace(sess, req.context, req.path_params["namespace"])
        return md.render_namespace(sess, ns)


@api.route(NS, "PUT")
def update_namespace(req):
    with session() as sess:
        ns = md.update_namespace(sess, req.context, req.path_params["namespace"], req.json)
        return md.render_namespace(sess, ns, detail=False)


@api.route(NS, "DELETE")
def delete_namespace(req):
    with session() as sess:
        md.delete_namespace(sess, req.context, req.path_params["namespace"])
    return 204, None


# ---------------------------------------------------------------------------- resource types
@api.route(NS + "/resource_types", "GET")
def list_associations(req):
    with session() as sess:
        ns = md.get_namespace(sess, req.context, req.path_params["namespace"])
        return {"resource_type_associations": md.list_associations(sess, ns)}


@api.route(NS + "/resource_types", "POST")
def add_association(req):
    with session() as sess:
        ns = md.get_namespace(sess, req.context, req.path_params["namespace"])
        return 201, md.add_association(sess, req.context, ns, req.json)


@api.route(NS + "/resource_types/{name}", "DELETE")
def remove_association(req):
    with session() as sess:
        md.remove_association(sess, req.context, req.path_params["namespace"], req.path_params["name"])
    return 204, None


# ---------------------------------------------------------------------------- properties
@api.route(NS + "/properties", "GET")
def list_properties(req):
    with session() as sess:
        ns = md.get_namespace(sess, req.context, req.path_params["namespace"])
        return {"properties": {p.name: md._render_property_schema(p) for p in md._rows(sess, m.MetadefProperty, ns)}}


@api.route(NS + "/properties", "POST")
def create_property(req):
    with session() as sess:
        return 201, md.render_property(md.create_property(sess, req.context, req.path_params["namespace"], req.json))


@api.route(NS + "/properties", "DELETE")
def delete_properties(req):
    with session() as sess:
        md.delete_children(sess, req.context, req.path_params["namespace"], m.MetadefProperty,
                           "delete_metadef_property")
    return 204, None


@api.route(NS + "/properties/{name}", "GET")
def show_property(req):
    with session() as sess:
        _, p = md.get_child(sess, req.context, req.path_params["namespace"], m.MetadefProperty,
                            req.path_params["name"], "property")
        return md.render_property(p)


@api.route(NS + "/properties/{name}", "PUT")
def update_property(req):
    with session() as sess:
        p = md.update_property(sess, req.context, req.path_params["namespace"], req.path_params["name"], req.json)
        return md.render_property(p)


@api.route(NS + "/properties/{name}", "DELETE")
def delete_property(req):
    with session() as sess:
        md.delete_child(sess, req.context, req.path_params["namespace"], m.MetadefProperty,
                        req.path_params["name"], "property", "delete_metadef_property")
    return 204, None


# ---------------------------------------------------------------------------- objects
@api.route(NS + "/objects", "GET")
def list_objects(req):
    with session() as sess:
        ns = md.get_namespace(sess, req.context, req.path_params["namespace"])
        return {"objects": [md.render_object(ns, o) for o in md._rows(sess, m.MetadefObject, ns)],
                "schema": "/v2/schemas/metadefs/objects"}


@api.route(NS + "/objects", "POST")
def create_object(req):
    with session() as sess:
        ns, o = md.create_object(sess, req.context, req.path_params["namespace"], req.json)
        return 201, md.render_object(ns, o)


@api.route(NS + "/objects", "DELETE")
def delete_objects(req):
    with session() as sess:
        md.delete_children(sess, req.context, req.path_params["namespace"], m.MetadefObject,
                           "delete_metadef_object")
    return 204, None


@api.route(NS + "/objects/{name}", "GET")
def show_object(req):
    with session() as sess:
        ns, o = md.get_child(sess, req.context, req.path_params["namespace"], m.MetadefObject,
                             req.path_params["name"], "object")
        return md.render_object(ns, o)


@api.route(NS + "/objects/{name}", "PUT")
def update_object(req):
    with session() as sess:
        ns, o = md.update_object(sess, req.context, req.path_params["namespace"], req.path_params["name"], req.json)
        return md.render_object(ns, o)


@api.route(NS + "/objects/{name}", "DELETE")
def delete_object(req):
    with session() as sess:
        md.delete_child(sess, req.context, req.path_params["namespace"], m.MetadefObject,
                        req.path_params["name"], "object", "delete_metadef_object")
    return 204, None


# ---------------------------------------------------------------------------- tags
@api.route(NS + "/tags", "GET")
def list_tags(req):
    with session() as sess:
        ns = md.get_namespace(sess, req.context, req.path_params["namespace"])
        return {"tags": [md.render_tag(t) for t in md._rows(sess, m.MetadefTag, ns)]}


@api.route(NS + "/tags", "POST")
def create_tags(req):
    append = req.headers.get("x-openstack-append", "").lower() == "true"
    with session() as sess:
        tags = md.create_tags(sess, req.context, req.path_params["namespace"], req.json, append)
        return 201, {"tags": [md.render_tag(t) for t in tags]}


@api.route(NS + "/tags", "DELETE")
def delete_tags(req):
    with session() as sess:
        md.delete_children(sess, req.context, req.path_params["namespace"], m.MetadefTag, "delete_metadef_tags")
    return 204, None


@api.route(NS + "/tags/{name}", "POST")
def create_tag(req):
    with session() as sess:
        return 201, md.render_tag(md.create_tag(sess, req.context, req.path_params["namespace"],
                                                req.path_params["name"]))


@api.route(NS + "/tags/{name}", "GET")
def show_tag(req):
    with session() as sess:
        _, t = md.get_child(sess, req.context, req.path_params["namespace"], m.MetadefTag,
                            req.path_params["name"], "tag")
        return md.render_tag(t)


@api.route(NS + "/tags/{name}", "PUT")
def update_tag(req):
    with session() as sess:
        return md.render_tag(md.update_tag(sess, req.context, req.path_params["namespace"],
                                           req.path_params["name"], req.json))


@api.route(NS + "/tags/{name}", "DELETE")
def delete_tag(req):
    with session() as sess:
        md.delete_child(sess, req.context, req.path_params["namespace"], m.MetadefTag,
                        req.path_params["name"], "tag", "delete_metadef_tag")
    return 204, None
