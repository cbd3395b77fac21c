"""Instance metadata: the content of the OpenStack and EC2 metadata trees.

One builder serves both the metadata API (`/metadata`, what 169.254.169.254 is routed
to) and the config drive, so a guest sees the same facts either way. The input is a
plain `InstanceView` (no database objects), built by the servers module; the output is
a path -> bytes mapping per tree, which the API serves and the config drive writes.

Formats follow what cloud-init and CirrOS read: `openstack/<version>/meta_data.json`,
`user_data`, `network_data.json`, `vendor_data.json`, `vendor_data2.json`, and the EC2
`<version>/meta-data/...` keys and `user-data`.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import os
from dataclasses import dataclass, field

# The dated versions a metadata client may ask for; "latest" is the newest.
OPENSTACK_VERSIONS = ("2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
                      "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14")
EC2_VERSIONS = ("1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04")


@dataclass
class InstanceView:
    uuid: str
    name: str
    hostname: str
    project_id: str
    availability_zone: str | None = None
    launch_index: int = 0
    reservation_id: str = ""
    flavor_name: str = ""
    image_ref: str = ""
    key_name: str | None = None
    key_data: str | None = None
    key_type: str = "ssh"
    metadata: dict = field(default_factory=dict)
    user_data: bytes | None = None
    admin_pass: str | None = None
    security_groups: list[str] = field(default_factory=list)
    vifs: list[dict] = field(default_factory=list)  # network.core.get_instance_nw_info shape
    device_tags: list[dict] = field(default_factory=list)
    vendor_data: dict = field(default_factory=dict)


def _json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True).encode()


def meta_data(inst: InstanceView, *, with_admin_pass: bool = False) -> dict:
    body = {
        "uuid": inst.uuid,
        "name": inst.name,
        "hostname": inst.hostname,
        "launch_index": inst.launch_index,
        "availability_zone": inst.availability_zone,
        "project_id": inst.project_id,
        "meta": {str(k): str(v) for k, v in (inst.metadata or {}).items()},
        "devices": inst.device_tags,
        "random_seed": base64.b64encode(os.urandom(512)).decode(),
    }
    if inst.key_name and inst.key_data:
        body["public_keys"] = {inst.key_name: inst.key_data}
        body["keys"] = [{"name": inst.key_name, "type": inst.key_type, "data": inst.key_data}]
    if with_admin_pass and inst.admin_pass:
        body["admin_pass"] = inst.admin_pass
    return body


def network_data(inst: InstanceView) -> dict:
    """network_data.json: one link per port, one network per subnet address, DNS services."""
    links, networks, services = [], [], []
    for vif in inst.vifs:
        link_id = f"tap{vif['id'][:11]}"
        links.append({"id": link_id, "vif_id": vif["id"], "type": vif.get("type", "ovs"),
                      "mtu": vif.get("network", {}).get("mtu", 1500),
                      "ethernet_mac_address": vif.get("address")})
        for subnet in vif.get("network", {}).get("subnets", []):
            cidr = ipaddress.ip_network(subnet["cidr"], strict=False)
            for ip in subnet.get("ips", []):
                version = cidr.version
                net = {"id": f"network{len(networks)}", "link": link_id, "network_id": vif["network"]["id"],
                       "type": "ipv4_dhcp" if version == 4 else "ipv6_dhcp",
                       "ip_address": ip["address"], "netmask": str(cidr.netmask),
                       "routes": [], "services": []}
                if subnet.get("gateway"):
                    default = "0.0.0.0" if version == 4 else "::"
                    net["routes"].append({"network": default, "netmask": "0.0.0.0" if version == 4 else "::",
                                          "gateway": subnet["gateway"]})
                for dns in subnet.get("dns_nameservers", []):
                    svc = {"type": "dns", "address": dns}
                    net["services"].append(svc)
                    if svc not in services:
                        services.append(svc)
                networks.append(net)
    return {"links": links, "networks": networks, "services": services}


def openstack_tree(inst: InstanceView, *, config_drive: bool = False) -> dict[str, bytes]:
    """Files under `openstack/`: every dated version and `latest` have the same content
    (older clients ignore the keys they don't know)."""
    files: dict[str, bytes] = {}
    for version in OPENSTACK_VERSIONS + ("latest",):
        base = f"openstack/{version}/"
        files[base + "meta_data.json"] = _json(meta_data(inst, with_admin_pass=config_drive))
        if inst.user_data is not None:
            files[base + "user_data"] = inst.user_data
        files[base + "network_data.json"] = _json(network_data(inst))
        files[base + "vendor_data.json"] = _json(inst.vendor_data)
        files[base + "vendor_data2.json"] = _json({})
    return files


def _first_fixed_ip(inst: InstanceView, version: int = 4) -> str:
    for vif in inst.vifs:
        for subnet in vif.get("network", {}).get("subnets", []):
            for ip in subnet.get("ips", []):
                if ipaddress.ip_address(ip["address"]).version == version:
                    return ip["address"]
    return ""


def _first_floating_ip(inst: InstanceView) -> str:
    for vif in inst.vifs:
        for subnet in vif.get("network", {}).get("subnets", []):
            for ip in subnet.get("ips", []):
                for fip in ip.get("floating_ips", []):
                    return fip["address"]
    return ""


def ec2_meta_data(inst: InstanceView) -> dict:
    """The EC2 `meta-data/` tree as nested dicts (leaves are strings)."""
    tree = {
        "ami-id": f"ami-{inst.image_ref[:8]}" if inst.image_ref else "",
        "ami-launch-index": str(inst.launch_index),
        "ami-manifest-path": "none",
        "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
        "hostname": inst.hostname,
        "instance-action": "none",
        "instance-id": inst.uuid,
        "instance-type": inst.flavor_name,
        "local-hostname": inst.hostname,
        "local-ipv4": _first_fixed_ip(inst),
        "placement": {"availability-zone": inst.availability_zone or ""},
        "public-hostname": inst.hostname,
        "public-ipv4": _first_floating_ip(inst),
        "reservation-id": inst.reservation_id,
        "security-groups": "\n".join(inst.security_groups),
    }
    if inst.key_name and inst.key_data:
        tree["public-keys"] = {f"0={inst.key_name}": {"openssh-key": inst.key_data}}
    return tree


def ec2_tree(inst: InstanceView) -> dict[str, bytes]:
    """Files under `ec2/` as the config drive carries them (JSON per version)."""
    files: dict[str, bytes] = {}
    for version in EC2_VERSIONS + ("latest",):
        files[f"ec2/{version}/meta-data.json"] = _json(ec2_meta_data(inst))
        if inst.user_data is not None:
            files[f"ec2/{version}/user-data"] = inst.user_data
    return files


def lookup(tree, parts: list[str]):
    """Walk the EC2 tree: a dict lists its keys (dirs end with '/'), a leaf is its value.
    `public-keys/0` is reachable as `public-keys/0=name` is listed, as EC2 does."""
    node = tree
    for part in parts:
        if not isinstance(node, dict):
            return None
        if part in node:
            node = node[part]
            continue
        match = [k for k in node if k.split("=", 1)[0] == part]
        if not match:
            return None
        node = node[match[0]]
    return node


def render_listing(node: dict) -> bytes:
    names = []
    for key, value in node.items():
        names.append(key + "/" if isinstance(value, dict) and "=" not in key else key)
    return "\n".join(names).encode()
