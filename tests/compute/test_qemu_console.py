"""The noVNC console of a real QEMU guest, end to end with the real `openstack` CLI.

`pocketstack up --virt-driver qemu` boots `pocketstack-tiny`; `openstack console url show
--novnc` gives a URL whose page is noVNC and whose WebSocket (the token checked) relays
QEMU's VNC server: the RFB handshake Tempest's test_novnc makes (version, security type
None, ServerInit with the desktop name) goes through. A bad token is refused; a stopped
server has no console (409). Needs root and QEMU; skipped with the reason otherwise.
"""
from __future__ import annotations

import os
import shutil
import struct
import time
import urllib.parse

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client

from conftest import Cloud


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the qemu virt driver needs root"
    for tool in ("qemu-system-x86_64", "qemu-img", "syslinux", "mcopy", "mkfs.vfat", "busybox", "dropbear"):
        if shutil.which(tool) is None:
            return f"needs {tool} (tools/install-system-deps.sh)"
    if not os.path.isfile("/usr/share/novnc/vnc_lite.html"):
        return "needs Debian's novnc package (tools/install-system-deps.sh)"
    return None


REASON = _why_not()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="module")
def qcloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp("qconsole"), config={("compute", "compute_driver"): "qemu",
                                                           ("compute", "shutdown_timeout"): "20"})
    c.start(timeout=120)
    try:
        deadline = time.monotonic() + 240  # the tiny image is built (cached) and registered in the background
        while time.monotonic() < deadline:
            images = c.os_json("image", "list", "--name", "pocketstack-tiny")
            if images and images[0]["Status"] == "active":
                break
            time.sleep(2)
        else:
            pytest.fail("pocketstack-tiny was never registered:\n" + (c.state_dir / "up.out").read_text()[-3000:])
        yield c
    finally:
        for s in c.os_json("server", "list", "--all-projects"):
            c.openstack("server", "delete", "--wait", s["ID"], check=False)
        c.stop()


@pytest.fixture(scope="module")
def server(qcloud):
    return qcloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", "pocketstack-tiny",
                          "--no-network", "--wait", "vnc-guest")


def _ws_url(console_url: str) -> str:
    parts = urllib.parse.urlparse(console_url)
    return f"ws://{parts.netloc}/{urllib.parse.parse_qs(parts.query)['path'][0]}"


def test_novnc_page_and_rfb_handshake(qcloud, server):
    url = qcloud.os_json("console", "url", "show", "--novnc", server["id"])["url"]
    page = httpx.get(url)
    assert page.status_code == 200 and "noVNC" in page.text and "<script" in page.text
    with websockets.sync.client.connect(_ws_url(url), subprotocols=["binary"], open_timeout=10,
                                        max_size=None) as ws:
        greeting = ws.recv(timeout=10)
        assert greeting == b"RFB 003.008\n"  # QEMU's VNC server, through the proxy
        ws.send(greeting)
        types = ws.recv(timeout=10)
        assert types[0] >= 1 and 1 in types[1:1 + types[0]]  # security type None offered
        ws.send(bytes((1,)))
        assert ws.recv(timeout=10) == b"\0\0\0\0"  # SecurityResult OK
        ws.send(bytes((1,)))  # ClientInit, shared
        init = ws.recv(timeout=10)
        width, height = struct.unpack(">HH", init[:4])
        name_len = struct.unpack(">L", init[20:24])[0]
        assert width > 0 and height > 0 and len(init) == 24 + name_len
        # QEMU names the desktop after `-name guest=`: the server's hypervisor-side name
        name = qcloud.os_json("server", "show", server["id"])["OS-EXT-SRV-ATTR:instance_name"]
        assert init[24:].decode() == f"QEMU ({name})"


def test_bad_token_is_refused(qcloud, server):
    url = qcloud.os_json("console", "url", "show", "--novnc", server["id"])["url"]
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(_ws_url(url).replace("token=", "token=bad"), open_timeout=10)
    assert refused.value.response.status_code == 403


def test_stopped_server_has_no_console(qcloud, server):
    qcloud.openstack("server", "stop", server["id"])
    deadline = time.monotonic() + 90
    while qcloud.os_json("server", "show", server["id"])["status"] != "SHUTOFF":
        assert time.monotonic() < deadline, "the server never stopped"
        time.sleep(1)
    err = qcloud.openstack_fails("console", "url", "show", "--novnc", server["id"])
    assert "409" in err or "not ready" in err
