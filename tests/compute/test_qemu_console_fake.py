"""The noVNC console proxy with the fake virt driver (no QEMU): the URL the real
`openstack console url show --novnc` prints serves noVNC's page, its token can be looked
up by an admin (`openstack console connection show`), and the WebSocket (there is no VNC
server behind a fake guest) is accepted then closed with a clear reason, never a 500;
a bad token is refused before any byte is relayed. The QEMU side is test_qemu_console.py."""
from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client

from conftest import Cloud
from servers_util import start_cloud, upload_image

HAVE_NOVNC = Path("/usr/share/novnc/vnc_lite.html").is_file()


@pytest.fixture(scope="module")
def ccloud(tmp_path_factory):
    c = start_cloud(tmp_path_factory)
    c.image = upload_image(c)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def server(ccloud: Cloud):
    s = ccloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", ccloud.image, "--no-network",
                       "--wait", "console-fake")
    return s


def _ws_url(console_url: str) -> str:
    """Where noVNC (and Tempest) open the WebSocket: `/<path>` on the page's host."""
    parts = urllib.parse.urlparse(console_url)
    path = urllib.parse.parse_qs(parts.query)["path"][0]
    return f"ws://{parts.netloc}/{path}"


def test_console_url_page_and_token(ccloud, server):
    out = ccloud.os_json("console", "url", "show", "--novnc", server["id"])
    assert out["type"] == "novnc"
    url = out["url"]
    assert url.startswith(f"{ccloud.url}/compute/console/vnc_auto.html?path=")
    token = urllib.parse.parse_qs(urllib.parse.urlparse(_ws_url(url)).query)["token"][0]
    # the admin view of the token (os-console-auth-tokens, microversion 2.31+)
    shown = ccloud.os_json("--os-compute-api-version", "2.31", "console", "connection", "show", token)
    assert shown["instance_uuid"] == server["id"]
    # an unknown token: Nova's 404
    err = ccloud.openstack_fails("--os-compute-api-version", "2.31", "console", "connection", "show", "0" * 32)
    assert "404" in err or "invalid or has expired" in err
    if not HAVE_NOVNC:
        r = httpx.get(url)
        assert r.status_code == 503 and "novnc" in r.text
        pytest.skip("Debian's novnc package is not installed (tools/install-system-deps.sh)")
    r = httpx.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<html" in r.text and "</html>" in r.text and "noVNC" in r.text and "<script" in r.text
    # the page's scripts are served from the same place (relative paths)
    assert httpx.get(f"{ccloud.url}/compute/console/core/rfb.js").status_code == 200
    r = httpx.get(f"{ccloud.url}/compute/console/../../v3")
    assert r.status_code in (200, 404) and "noVNC" not in r.text


def test_websocket_without_a_vnc_server_closes_cleanly(ccloud, server):
    url = ccloud.os_json("console", "url", "show", "--novnc", server["id"])["url"]
    with websockets.sync.client.connect(_ws_url(url), subprotocols=["binary"], open_timeout=10) as ws:
        assert ws.subprotocol == "binary"
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1011 and "not reachable" in closed.value.rcvd.reason


def test_bad_token_is_refused(ccloud, server):
    url = ccloud.os_json("console", "url", "show", "--novnc", server["id"])["url"]
    bad = _ws_url(url).replace("token=", "token=bad")
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(bad, open_timeout=10)
    assert refused.value.response.status_code == 403
    # a project member cannot read tokens (admin only, as Nova)
    user, pw = ccloud.make_user("admin", "member")
    env = ccloud.env_for(user, pw, "admin")
    err = ccloud.openstack_fails("--os-compute-api-version", "2.31", "console", "connection", "show", "0" * 32,
                                 env=env)
    assert "not authorized to perform the requested action: os_compute_api:os-console-auth-tokens" in err


def test_tokens_are_stored_hashed(ccloud, server):
    """The database holds the SHA-256 of a console token, never the token itself."""
    import hashlib
    import sqlite3

    url = ccloud.os_json("console", "url", "show", "--novnc", server["id"])["url"]
    token = urllib.parse.parse_qs(urllib.parse.urlparse(_ws_url(url)).query)["token"][0]
    db = next(Path(ccloud.state_dir).rglob("*.db"))
    rows = sqlite3.connect(db).execute("select * from compute_console_auth_token").fetchall()
    assert hashlib.sha256(token.encode()).hexdigest() in {r[1] for r in rows}
    assert token not in json.dumps(rows)


def test_a_deleted_servers_token_is_refused(ccloud):
    s = ccloud.os_json("server", "create", "--flavor", "m1.tiny", "--image", ccloud.image, "--no-network",
                       "--wait", "console-gone")
    url = ccloud.os_json("console", "url", "show", "--novnc", s["id"])["url"]
    token = urllib.parse.parse_qs(urllib.parse.urlparse(_ws_url(url)).query)["token"][0]
    assert ccloud.os_json("--os-compute-api-version", "2.31", "console", "connection", "show", token)
    ccloud.openstack("server", "delete", "--wait", s["id"])
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websockets.sync.client.connect(_ws_url(url), open_timeout=10)
    assert refused.value.response.status_code == 403
    ccloud.openstack_fails("--os-compute-api-version", "2.31", "console", "connection", "show", token)
