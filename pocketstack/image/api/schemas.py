"""`/v2/schemas/*`: the JSON schemas clients fetch and validate against.

python-glanceclient builds its image and member models from these documents (warlock,
jsonschema) and validates both what it sends and what it receives, so they describe
exactly what this API accepts and returns. `is_base: false` marks the common optional
properties: glanceclient patches those with `add` instead of `replace`.
"""
from __future__ import annotations

from pocketstack.image import core
from pocketstack.image.api.common import api

UUID_PATTERN = ("^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                "-([0-9a-fA-F]){12}$")


def _ro(kind, description, **extra):
    return {"type": kind, "readOnly": True, "description": description, **extra}


def image_properties() -> dict:
    return {
        "id": {"type": "string", "pattern": UUID_PATTERN, "description": "An identifier for the image"},
        "name": {"type": ["null", "string"], "maxLength": 255,
                 "description": "Descriptive name for the image"},
        "status": _ro("string", "Status of the image", enum=core.STATUSES),
        "visibility": {"type": "string", "enum": core.VISIBILITIES,
                       "description": "Scope of image accessibility"},
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean",
                      "description": "If true, image will not appear in default image list response."},
        "checksum": _ro(["null", "string"], "md5 hash of image contents.", maxLength=32),
        "os_hash_algo": _ro(["null", "string"], "Algorithm to calculate the os_hash_value", maxLength=64),
        "os_hash_value": _ro(["null", "string"], "Hexdigest of the image contents using the algorithm "
                             "specified by the os_hash_algo", maxLength=128),
        "owner": {"type": ["null", "string"], "maxLength": 255, "description": "Owner of the image"},
        "size": _ro(["null", "integer"], "Size of image file in bytes"),
        "virtual_size": _ro(["null", "integer"], "Virtual size of image in bytes"),
        "container_format": {"type": ["null", "string"], "enum": [None] + core.CONTAINER_FORMATS,
                             "description": "Format of the container"},
        "disk_format": {"type": ["null", "string"], "enum": [None] + core.DISK_FORMATS,
                        "description": "Format of the disk"},
        "created_at": _ro("string", "Date and time of image registration"),
        "updated_at": _ro("string", "Date and time of the last image modification"),
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 255},
                 "description": "List of strings related to the image"},
        "direct_url": _ro("string", "URL to access the image file kept in external store"),
        "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
        "self": _ro("string", "An image self url"),
        "file": _ro("string", "An image file url"),
        "stores": _ro("string", "Store in which image data resides.  Only present when the operator has "
                      "enabled multiple stores.  May be a comma-separated list of store identifiers."),
        "schema": _ro("string", "An image schema url"),
        "locations": {"type": "array", "description": "A set of URLs to access the image file kept in "
                      "external store",
                      "items": {"type": "object", "required": ["url", "metadata"],
                                "properties": {"url": {"type": "string", "maxLength": 255},
                                               "metadata": {"type": "object"},
                                               "validation_data": {"type": "object"}}}},
        # common optional properties (Glance's schema-image.json)
        "kernel_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": False,
                      "description": "ID of image stored in Glance that should be used as the kernel when "
                                     "booting an AMI-style image."},
        "ramdisk_id": {"type": ["null", "string"], "pattern": UUID_PATTERN, "is_base": False,
                       "description": "ID of image stored in Glance that should be used as the ramdisk when "
                                      "booting an AMI-style image."},
        "instance_uuid": {"type": "string", "is_base": False,
                          "description": "Metadata which can be used to record which instance this image "
                                         "is associated with. (Informational only, does not create an "
                                         "instance snapshot.)"},
        "architecture": {"type": "string", "is_base": False,
                         "description": "Operating system architecture as specified in "
                                        "https://docs.openstack.org/python-glanceclient/latest/cli"
                                        "/property-keys.html"},
        "os_distro": {"type": "string", "is_base": False,
                      "description": "Common name of operating system distribution as specified in "
                                     "https://docs.openstack.org/python-glanceclient/latest/cli"
                                     "/property-keys.html"},
        "os_version": {"type": "string", "is_base": False,
                       "description": "Operating system version as specified by the distributor."},
        "description": {"type": "string", "is_base": False, "description": "A human-readable string "
                        "describing this image."},
        "cinder_encryption_key_id": {"type": "string", "is_base": False,
                                     "description": "Identifier in the OpenStack Key Management Service "
                                                    "for the encryption key for the Block Storage "
                                                    "Service to use when mounting a volume created from "
                                                    "this image"},
        "cinder_encryption_key_deletion_policy": {
            "type": "string", "enum": ["on_image_deletion", "do_not_delete"], "is_base": False,
            "description": "States the condition under which the Image Service will delete the object "
                           "associated with the 'cinder_encryption_key_id' image property."},
    }


def image_schema() -> dict:
    return {
        "name": "image",
        "properties": image_properties(),
        "additionalProperties": {"type": "string"},
        "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


def images_schema() -> dict:
    return {
        "name": "images",
        "properties": {
            "images": {"type": "array", "items": image_schema()},
            "schema": {"type": "string"},
            "first": {"type": "string"},
            "next": {"type": "string"},
        },
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


def member_schema() -> dict:
    return {
        "name": "member",
        "properties": {
            "created_at": {"type": "string", "description": "Date and time of image member creation"},
            "image_id": {"type": "string", "pattern": UUID_PATTERN,
                         "description": "An identifier for the image"},
            "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
            "status": {"type": "string", "enum": core.MEMBER_STATUSES,
                       "description": "The status of this image member"},
            "updated_at": {"type": "string", "description": "Date and time of last modification of "
                                                            "image member"},
            "schema": {"type": "string", "readOnly": True},
        },
    }


def members_schema() -> dict:
    return {
        "name": "members",
        "properties": {"members": {"type": "array", "items": member_schema()}, "schema": {"type": "string"}},
        "links": [{"rel": "describedby", "href": "{schema}"}],
    }


def task_schema() -> dict:
    return {
        "name": "task",
        "properties": {
            "id": {"type": "string", "pattern": UUID_PATTERN, "description": "An identifier for the task"},
            "type": {"type": "string", "enum": ["import", "api_image_import", "location_import"],
                     "description": "The type of task represented by this content"},
            "status": {"type": "string", "enum": ["pending", "processing", "success", "failure"],
                       "description": "The current status of this task"},
            "input": {"type": ["null", "object"], "description": "The parameters required by task"},
            "result": {"type": ["null", "object"], "description": "The result of current task"},
            "owner": {"type": ["null", "string"], "description": "An identifier for the owner of this task"},
            "message": {"type": "string", "description": "Human-readable informative message"},
            "image_id": {"type": ["null", "string"], "description": "Image associated with the task"},
            "request_id": {"type": ["null", "string"], "description": "Request ID of the task"},
            "user_id": {"type": ["null", "string"], "description": "User associated with the task"},
            "expires_at": {"type": ["null", "string"], "description": "When the task expires"},
            "created_at": {"type": "string", "description": "Date and time of task creation"},
            "updated_at": {"type": "string", "description": "Date and time of last modification of task"},
            "self": {"type": "string"},
            "schema": {"type": "string"},
        },
        "required": ["type", "input"],
        "links": [{"rel": "self", "href": "{self}"}, {"rel": "describedby", "href": "{schema}"}],
    }


def tasks_schema() -> dict:
    return {
        "name": "tasks",
        "properties": {"tasks": {"type": "array", "items": task_schema()}, "schema": {"type": "string"},
                       "first": {"type": "string"}, "next": {"type": "string"}},
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


# ---------------------------------------------------------------------------- metadefs
_NAME_255 = {"type": "string", "maxLength": 255}
_TIME = {"type": "string", "readOnly": True, "format": "date-time"}


def _property_definition() -> dict:
    return {
        "type": "object",
        "required": ["title", "type"],
        "properties": {
            "name": {"type": "string", "maxLength": 255},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "operators": {"type": "array", "items": {"type": "string"}},
            "type": {"type": "string", "enum": ["array", "boolean", "integer", "number", "object", "string",
                                                None]},
            "readonly": {"type": "boolean"},
            "default": {},
            "maximum": {"type": "number"},
            "minimum": {"type": "number"},
            "maxLength": {"type": "integer", "minimum": 0},
            "minLength": {"type": "integer", "minimum": 0},
            "pattern": {"type": "string", "format": "regex"},
            "enum": {"type": "array"},
            "items": {"type": "object"},
            "maxItems": {"type": "integer", "minimum": 0},
            "minItems": {"type": "integer", "minimum": 0},
            "uniqueItems": {"type": "boolean", "default": False},
            "additionalItems": {"type": "boolean"},
        },
    }


def md_namespace_schema() -> dict:
    return {
        "name": "namespace",
        "properties": {
            "namespace": {**_NAME_255, "description": "The unique namespace text."},
            "display_name": {**_NAME_255, "description": "The user friendly name for the namespace."},
            "description": {"type": "string", "maxLength": 500, "description": "Provides a user friendly "
                            "description of the namespace."},
            "visibility": {"type": "string", "enum": ["public", "private"],
                           "description": "Scope of namespace accessibility."},
            "protected": {"type": "boolean", "description": "If true, namespace will not be deletable."},
            "owner": {**_NAME_255, "description": "Owner of the namespace."},
            "created_at": {**_TIME, "description": "Date and time of namespace creation"},
            "updated_at": {**_TIME, "description": "Date and time of the last namespace modification"},
            "schema": {"type": "string", "readOnly": True},
            "self": {"type": "string", "readOnly": True},
            "resource_type_associations": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "prefix": {"type": "string"},
                "properties_target": {"type": "string"}}}},
            "properties": {"type": "object", "additionalProperties": _property_definition()},
            "objects": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "description": {"type": "string"},
                "required": {"type": "array", "items": {"type": "string"}},
                "properties": {"type": "object", "additionalProperties": _property_definition()}}}},
            "tags": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        },
        "required": ["namespace"],
        "additionalProperties": False,
        "links": [{"rel": "self", "href": "{self}"}, {"rel": "describedby", "href": "{schema}"}],
    }


def _collection(name: str, item: dict, key: str | None = None) -> dict:
    return {
        "name": name,
        "properties": {key or name: {"type": "array", "items": item}, "first": {"type": "string"},
                       "next": {"type": "string"}, "schema": {"type": "string"}},
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


def md_resource_type_schema() -> dict:
    return {
        "name": "resource_type_association",
        "properties": {
            "name": {**_NAME_255, "description": "Resource type names should be aligned with Heat resource "
                     "types whenever possible: https://docs.openstack.org/heat/latest/template_guide/"
                     "openstack.html"},
            "prefix": {"type": "string", "maxLength": 80, "description": "Specifies the prefix to use for "
                       "the given resource type."},
            "properties_target": {"type": "string", "maxLength": 80, "description": "Some resource types "
                                  "allow more than one key / value pair per instance."},
            "created_at": {**_TIME, "description": "Date and time of resource type association"},
            "updated_at": {**_TIME, "description": "Date and time of the last resource type association "
                           "modification"},
        },
        "required": ["name"],
        "additionalProperties": False,
    }


def md_object_schema() -> dict:
    return {
        "name": "object",
        "properties": {
            "name": _NAME_255,
            "description": {"type": "string"},
            "required": {"type": "array", "items": {"type": "string"}},
            "properties": {"type": "object", "additionalProperties": _property_definition()},
            "schema": {"type": "string", "readOnly": True},
            "self": {"type": "string", "readOnly": True},
            "created_at": {**_TIME, "description": "Date and time of object creation"},
            "updated_at": {**_TIME, "description": "Date and time of the last object modification"},
        },
        "required": ["name"],
        "additionalProperties": False,
        "links": [{"rel": "self", "href": "{self}"}, {"rel": "describedby", "href": "{schema}"}],
    }


def md_property_schema() -> dict:
    definition = _property_definition()
    definition["properties"]["name"] = _NAME_255
    return {"name": "property", **{k: v for k, v in definition.items()}, "required": ["name", "title", "type"],
            "additionalProperties": False}


def md_properties_schema() -> dict:
    return {
        "name": "properties",
        "properties": {"properties": {"type": "object", "additionalProperties": _property_definition()}},
        "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                  {"rel": "describedby", "href": "{schema}"}],
    }


def md_tag_schema() -> dict:
    return {
        "name": "tag",
        "properties": {
            "name": _NAME_255,
            "created_at": {**_TIME, "description": "Date and time of tag creation"},
            "updated_at": {**_TIME, "description": "Date and time of the last tag modification"},
        },
        "required": ["name"],
        "additionalProperties": False,
    }


SCHEMAS = {
    "image": image_schema,
    "images": images_schema,
    "member": member_schema,
    "members": members_schema,
    "task": task_schema,
    "tasks": tasks_schema,
    "metadefs/namespace": md_namespace_schema,
    "metadefs/namespaces": lambda: _collection("namespaces", md_namespace_schema()),
    "metadefs/resource_type": md_resource_type_schema,
    "metadefs/resource_types": lambda: _collection("resource_type_associations", md_resource_type_schema()),
    "metadefs/object": md_object_schema,
    "metadefs/objects": lambda: _collection("objects", md_object_schema()),
    "metadefs/property": md_property_schema,
    "metadefs/properties": md_properties_schema,
    "metadefs/tag": md_tag_schema,
    "metadefs/tags": lambda: _collection("tags", md_tag_schema()),
}


@api.route("/v2/schemas/{name:path}", "GET")
def show_schema(req):
    req.context  # any authenticated caller (as Glance)
    factory = SCHEMAS.get(req.path_params["name"].rstrip("/"))
    if factory is None:
        from pocketstack.common.errors import NotFound

        raise NotFound("The resource could not be found.")
    return factory()
