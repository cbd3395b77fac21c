"""Tempest's SSH validation against real instances (`tools/tempest.py --validation`).

With `[validation] run_validation = true` Tempest boots servers, gives them floating IPs
and logs into them over SSH. That needs a real cloud: the QEMU virt driver, the
linuxbridge dataplane with its demo external network (`public`, 172.24.4.0/24, whose far
side is the `outside` namespace) and the `pocketstack-tiny` image (user `tiny`, key pairs
only). Tempest itself runs on the host, where 172.24.4.0/24 is not routed: a veth pair
joins the host to the outside namespace (100.127.254.252/30, refused when the host already
uses it) and the host routes
the external network through it, as an operator's uplink would.

Root only (taps, bridges, namespaces); everything made here is removed by `cleanup()`.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

HOST_END, NS_END = "psqtv0", "psqtv1"
# a /30 of the shared address space (RFC 6598), checked against the host's own addresses and routes
LINK_NET, HOST_IP, NS_IP = "100.127.254.252/30", "100.127.254.253", "100.127.254.254"
EXTERNAL_CIDR = "172.24.4.0/24"


class ValidationCloud:
    """The extra pocketstack settings of a real cloud and the host route to its floating IPs."""

    def __init__(self):
        self.outside_ns = "psqtempest" + os.urandom(2).hex()
        # dnsmasq re-reads its files as `nobody`: every parent of the run dir must be searchable
        self.run_dir = Path(tempfile.mkdtemp(prefix="pocketstack-tempest-run-"))
        self.run_dir.chmod(0o755)

    @staticmethod
    def check() -> str | None:
        if os.geteuid() != 0:
            return "--validation needs root (QEMU instances on Linux bridges)"
        for tool in ("qemu-system-x86_64", "ip", "dnsmasq", "iptables-restore"):
            if shutil.which(tool) is None:
                return f"--validation needs {tool} (tools/install-system-deps.sh)"
        return None

    def settings(self) -> list[tuple[str, str, str]]:
        return [("compute", "compute_driver", "qemu"), ("network", "backend", "linuxbridge"),
                ("network", "external_network", "demo"), ("compute", "register_tiny_image", "true"),
                ("linux_bridge", "outside_namespace", self.outside_ns),
                ("linux_bridge", "run_dir", str(self.run_dir))]

    def route_host(self, timeout: float = 60) -> None:
        """Host <-> outside namespace veth, and 172.24.4.0/24 via the namespace."""
        deadline = time.monotonic() + timeout
        while subprocess.run(["ip", "netns", "exec", self.outside_ns, "true"], capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the outside namespace {self.outside_ns} did not appear")
            time.sleep(0.5)
        _check_unused(LINK_NET)
        _check_unused(EXTERNAL_CIDR)
        ns = ["ip", "netns", "exec", self.outside_ns]
        for cmd in (["ip", "link", "add", HOST_END, "type", "veth", "peer", "name", NS_END, "netns", self.outside_ns],
                    ["ip", "addr", "add", f"{HOST_IP}/30", "dev", HOST_END], ["ip", "link", "set", HOST_END, "up"],
                    ns + ["ip", "addr", "add", f"{NS_IP}/30", "dev", NS_END], ns + ["ip", "link", "set", NS_END, "up"],
                    ns + ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
                    ["ip", "route", "replace", EXTERNAL_CIDR, "via", NS_IP]):
            subprocess.run(cmd, check=True, capture_output=True)

    def tempest_sections(self, auth_url: str, user: str, password: str, project: str, domain: str) -> dict:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": domain}}}},
            "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
        req = urllib.request.Request(auth_url + "/auth/tokens", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            auth = {"X-Auth-Token": resp.headers["X-Subject-Token"]}
            catalog = json.loads(resp.read())["token"]["catalog"]
        url = {svc["type"]: ep["url"].rstrip("/") for svc in catalog for ep in svc["endpoints"]
               if ep["interface"] == "public"}
        image_id = _wait_image(url["image"], auth)
        flavors = [_flavor(url["compute"], auth, name, ram, disk)
                   for name, ram, disk in (("tiny.validation", 256, 1), ("tiny.validation.alt", 320, 2))]
        with urllib.request.urlopen(urllib.request.Request(
                f"{url['network']}/v2.0/networks?name=public", headers=auth), timeout=30) as resp:
            public = json.loads(resp.read())["networks"][0]["id"]
        self.public_id = public
        return {
            "validation": {"run_validation": "true", "image_ssh_user": "tiny", "image_alt_ssh_user": "tiny",
                           "connect_method": "floating", "auth_method": "keypair", "ip_version_for_ssh": "4",
                           "ssh_timeout": "300", "connect_timeout": "60", "ping_timeout": "120",
                           "security_group": "true", "security_group_rules": "true"},
            "network": {"public_network_id": public, "floating_network_name": "public"},
            "compute": {"image_ref": image_id, "image_ref_alt": image_id, "flavor_ref": flavors[0],
                        "flavor_ref_alt": flavors[1], "build_timeout": "300"},
            # what the QEMU driver does not do (yet): docs/compute-qemu.md
            "compute-feature-enabled": {"change_password": "false", "live_migration": "false",
                                        "cold_migration": "false", "personality": "false",
                                        "vnc_console": "false", "serial_console": "false",
                                        "spice_console": "false"},
        }

    def cleanup(self, state_dir: Path | None = None) -> None:
        """After the cloud stopped: the route, the veth, and what the dataplane keeps across
        restarts (dnsmasq, metadata proxies, namespaces, bridges, firewall chains) and guests."""
        subprocess.run(["ip", "route", "del", EXTERNAL_CIDR, "via", NS_IP], capture_output=True)
        subprocess.run(["ip", "link", "delete", HOST_END], capture_output=True)
        marks = [str(self.run_dir).encode()] + ([str(state_dir).encode()] if state_dir else [])
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and any(m in (proc / "cmdline").read_bytes() for m in marks):
                    os.kill(int(proc.name), 9)
            except OSError:
                pass
        ids = {p.name for p in self.run_dir.glob("dhcp/*")} | {p.name for p in self.run_dir.glob("router/*")}
        ids |= {getattr(self, "public_id", "")} - {""}
        for ident in sorted(ids):
            for ns in (f"qdhcp-{ident}", f"qrouter-{ident}"):
                subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
            subprocess.run(["ip", "link", "delete", "brq" + ident[:11]], capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.outside_ns], capture_output=True)
        try:
            from pocketstack.network.backends.linuxbridge import LinuxBridgeBackend

            LinuxBridgeBackend(run_dir=str(self.run_dir)).remove_firewall()
        except Exception:  # noqa: BLE001 - best effort
            pass
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _check_unused(cidr: str) -> None:
    """Never shadow the host's own networks (its uplink, its default gateway)."""
    import ipaddress

    net = ipaddress.ip_network(cidr)
    for cmd in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show"]):
        for line in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines():
            for word in line.split():
                try:
                    other = ipaddress.ip_network(word, strict=False)
                except ValueError:
                    continue
                if other.prefixlen and other.overlaps(net):
                    raise RuntimeError(f"{cidr} is already in use on this host ({line.strip()}); "
                                       "--validation will not shadow it")


def _wait_image(image_url: str, auth: dict, timeout: float = 300) -> str:
    """The `pocketstack-tiny` image the cloud registers in the background (a first build ~30 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(urllib.request.Request(
                f"{image_url}/v2/images?name=pocketstack-tiny&status=active", headers=auth), timeout=30) as resp:
            images = json.loads(resp.read())["images"]
        if images:
            return images[0]["id"]
        time.sleep(2)
    raise RuntimeError("the pocketstack-tiny image was not registered in time (see the cloud's log)")


def _flavor(compute_url: str, auth: dict, name: str, ram: int, disk: int) -> str:
    body = {"flavor": {"name": name, "ram": ram, "vcpus": 1, "disk": disk}}
    req = urllib.request.Request(f"{compute_url}/flavors", data=json.dumps(body).encode(), method="POST",
                                 headers={**auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["flavor"]["id"]
