"""The Image service's default policy: upstream Glance's (secure RBAC) defaults.

Rule names are Glance's own (`get_image`, `publicize_image`, ...), so an operator's
Glance `policy.yaml` entries carry over into `<state_dir>/policy.yaml` unchanged.

Targets (what `%(...)s` refers to) are built as Glance builds them:
`project_id` is the image's owner, `member_id` the caller's project when it is a
member of the image, `visibility` the image's visibility, `owner` the owner asked for
on create. Visibility (who may even see an image) is checked before policy, as in
Glance: an image the caller cannot see is a 404, not a 403.
"""
ADMIN = "rule:context_is_admin"
PROJECT_MEMBER = "role:member and project_id:%(project_id)s"
PROJECT_READER = "role:reader and project_id:%(project_id)s"
ADMIN_OR_PROJECT_MEMBER = f"{ADMIN} or ({PROJECT_MEMBER})"
ADMIN_OR_PROJECT_READER = f"{ADMIN} or ({PROJECT_READER})"
SHARED_WITH = ("project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s"
               " or 'public':%(visibility)s or 'shared':%(visibility)s")
ADMIN_OR_READER_GET_IMAGE = f"{ADMIN} or (role:reader and ({SHARED_WITH}))"
ADMIN_OR_MEMBER_DOWNLOAD = f"{ADMIN} or (role:member and ({SHARED_WITH}))"
ADMIN_OR_READER_OF_OWNER_OR_MEMBER = (f"{ADMIN} or (role:reader and (project_id:%(project_id)s"
                                      " or project_id:%(member_id)s))")

DEFAULTS = {
    "context_is_admin": "role:admin",
    "service_api": "role:service or role:admin",
    # images
    "add_image": f"{ADMIN} or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
    "get_image": ADMIN_OR_READER_GET_IMAGE,
    "get_images": ADMIN_OR_PROJECT_READER,
    "modify_image": ADMIN_OR_PROJECT_MEMBER,
    "delete_image": ADMIN_OR_PROJECT_MEMBER,
    "publicize_image": "role:admin",
    "communitize_image": ADMIN_OR_PROJECT_MEMBER,
    "deactivate": ADMIN_OR_PROJECT_MEMBER,
    "reactivate": ADMIN_OR_PROJECT_MEMBER,
    # data
    "upload_image": ADMIN_OR_PROJECT_MEMBER,
    "download_image": ADMIN_OR_MEMBER_DOWNLOAD,
    "copy_image": "role:admin",
    "delete_image_location": "role:admin",
    "get_image_location": ADMIN_OR_READER_GET_IMAGE,
    "set_image_location": ADMIN_OR_PROJECT_MEMBER,
    # sharing
    "add_member": ADMIN_OR_PROJECT_MEMBER,
    "delete_member": ADMIN_OR_PROJECT_MEMBER,
    "get_member": ADMIN_OR_READER_OF_OWNER_OR_MEMBER,
    "get_members": ADMIN_OR_READER_OF_OWNER_OR_MEMBER,
    "modify_member": f"{ADMIN} or (role:member and project_id:%(member_id)s)",
    # tasks, cache, discovery
    "get_task": ADMIN,
    "get_tasks": ADMIN,
    "add_task": ADMIN,
    "modify_task": ADMIN,
    "tasks_api_access": "role:admin",
    "manage_image_cache": "role:admin",
    "stores_info_detail": "role:admin",
    # metadata definitions: anyone reads (visibility applies), admins write
    "metadef_default": "",
    "metadef_admin": "role:admin",
    **{f"get_metadef_{x}": "rule:metadef_default" for x in (
        "namespace", "namespaces", "object", "objects", "property", "properties", "tag", "tags",
        "resource_type")},
    "list_metadef_resource_types": "rule:metadef_default",
    **{f"{verb}_metadef_{x}": "rule:metadef_admin" for verb in ("add", "modify", "delete") for x in (
        "namespace", "object", "property", "tag")},
    "add_metadef_tags": "rule:metadef_admin",
    "delete_metadef_tags": "rule:metadef_admin",
    "add_metadef_resource_type_association": "rule:metadef_admin",
    "remove_metadef_resource_type_association": "rule:metadef_admin",
}
