"""The noVNC console proxy: Nova's `nova-novncproxy` and `console_auth_tokens`, in-process.

`openstack console url show --novnc SERVER` gets
`<public_url>/compute/console/vnc_auto.html?path=compute%2Fconsole%2Fwebsockify%3Ftoken%3D<token>`.
This module serves that page (Debian's `novnc` package files from `[vnc] novnc_path`,
default /usr/share/novnc: `vnc_auto.html` is noVNC's auto-connecting `vnc_lite.html`, as
upstream renamed it) and the WebSocket at `/compute/console/websockify?token=...`, which
checks the token and relays bytes to the instance's VNC server (the QEMU driver's
`vnc.sock` unix socket, or `host:port` for drivers that give one). noVNC and Tempest's
websocket client both connect to `/<path>` of the page's host, so the token's path is
root-relative.

Tokens live in the database (`compute_console_auth_token`, only their SHA-256), so every
controller sharing the database accepts them; they expire after `[consoleauth] token_ttl`
seconds (600, Nova's default) and are not single-use (noVNC reconnects with the same URL,
as with Nova); a deleted server's tokens no longer count. Admins can look one up with
`GET /os-console-auth-tokens/{token}`.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
from pathlib import Path

from sqlalchemy import Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pocketstack.common.db import Base
from pocketstack.common.errors import ApiError, fault_format
from pocketstack.common.runtime import current
from pocketstack.compute.models import Instance

log = logging.getLogger("pocketstack.compute.console")

DEFAULT_NOVNC = "/usr/share/novnc"
DEFAULT_TTL = 600
WS_PATH = "compute/console/websockify"  # root-relative, as noVNC's `path` parameter wants it


class ConsoleAuthToken(Base):
    """One console URL handed out: where its proxy connects, until when (Nova's table)."""

    __tablename__ = "compute_console_auth_token"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    console_type: Mapped[str] = mapped_column(String(255), nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    port: Mapped[int | None] = mapped_column(Integer)
    internal_access_path: Mapped[str | None] = mapped_column(String(255))
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    access_url_base: Mapped[str | None] = mapped_column(String(255))
    expires: Mapped[int] = mapped_column(Integer, nullable=False, index=True)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _ttl() -> int:
    try:
        return max(1, int(current().config.get("consoleauth", "token_ttl", str(DEFAULT_TTL)) or DEFAULT_TTL))
    except ValueError:
        return DEFAULT_TTL


def authorize(instance_uuid: str, console_type: str, connect: dict, access_url_base: str) -> str:
    """A new token for `connect` ({"host", "port", "internal_access_path"}); expired ones go."""
    token = secrets.token_hex(16)
    now = int(time.time())
    with current().db.session() as sess:
        sess.execute(delete(ConsoleAuthToken).where(ConsoleAuthToken.expires < now))
        sess.add(ConsoleAuthToken(token_hash=_hash(token), console_type=console_type,
                                  host=str(connect.get("host") or "127.0.0.1"), port=connect.get("port"),
                                  internal_access_path=connect.get("internal_access_path"),
                                  instance_uuid=instance_uuid, access_url_base=access_url_base,
                                  expires=now + _ttl()))
    return token


def validate(token: str | None) -> dict | None:
    """The token's connection info while it is valid, else None."""
    if not token or len(token) > 128:
        return None
    with current().db.session() as sess:
        row = sess.scalar(select(ConsoleAuthToken).where(ConsoleAuthToken.token_hash == _hash(token)))
        if row is None or row.expires < time.time():
            return None
        gone = sess.scalar(select(Instance.deleted).where(Instance.uuid == row.instance_uuid))
        if gone is None or gone:  # Nova deletes a server's tokens with it
            return None
        return {"instance_uuid": row.instance_uuid, "host": row.host, "port": row.port,
                "internal_access_path": row.internal_access_path, "console_type": row.console_type}


def url_for(console_type: str, token: str) -> str:
    base = current().config.public_url
    if console_type == "novnc":
        return f"{base}/compute/console/vnc_auto.html?path={WS_PATH.replace('/', '%2F')}%3Ftoken%3D{token}"
    paths = {"xvpvnc": f"/console?token={token}", "spice-html5": f"/spice_auto.html?token={token}",
             "rdp-html5": f"/rdp?token={token}", "webmks": f"/mks?token={token}"}
    if console_type == "serial":
        return f"ws://127.0.0.1:6083/?token={token}"
    return f"{base}/compute/console{paths[console_type]}"


# ---------------------------------------------------------------------------- the proxy
def _novnc_dir() -> Path:
    return Path(current().config.get("vnc", "novnc_path", DEFAULT_NOVNC) or DEFAULT_NOVNC)


def _error(message: str, code: int = 404) -> JSONResponse:
    """Nova's error body (`itemNotFound`, `serviceUnavailable`...)."""
    err = ApiError(message)
    err.code = code
    return JSONResponse(fault_format(err), status_code=code)


async def _page(request):
    """The noVNC files; `vnc_auto.html` is the auto-connecting page (`vnc_lite.html`)."""
    root = _novnc_dir()
    rel = request.path_params.get("path") or "vnc_auto.html"
    if rel in ("vnc_auto.html", "vnc_lite.html"):
        rel = "vnc_lite.html"
    if not (root / "vnc_lite.html").is_file():
        return _error(f"The noVNC client is not installed on this controller ({root}; Debian package "
                          "novnc)", 503)
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()) or not target.is_file():
        return _error("The resource could not be found.")
    return FileResponse(target)


async def _index(request):
    return RedirectResponse(request.url.replace(path=request.url.path.rstrip("/") + "/vnc_auto.html"))


@contextlib.asynccontextmanager
async def _open(info: dict):
    """A stream to the console's VNC server (a unix socket path may exceed 108 bytes: it is
    reached through a descriptor of its directory)."""
    path = info.get("internal_access_path")
    if path:
        fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(f"/proc/self/fd/{fd}/{os.path.basename(path)}"), 5)
        finally:
            os.close(fd)
    else:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(info["host"], int(info["port"])), 5)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _websockify(ws: WebSocket):
    token = ws.query_params.get("token") or ws.cookies.get("token")
    info = await run_in_threadpool(validate, token)
    if info is None:
        log.info("console connection refused: invalid or expired token")
        await ws.close(code=1008, reason="Invalid or expired console token")  # before accept: HTTP 403
        return
    offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    subprotocol = "binary" if "binary" in offered else None
    try:
        opened = _open(info)
        reader, writer = await opened.__aenter__()
    except (OSError, asyncio.TimeoutError, ValueError, TypeError) as exc:
        log.warning("console of %s unreachable: %s", info["instance_uuid"], exc)
        await ws.accept(subprotocol=subprotocol)
        await ws.close(code=1011, reason=f"The console of instance {info['instance_uuid']} is not reachable")
        return
    await ws.accept(subprotocol=subprotocol)

    async def to_vnc():
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                data = msg.get("bytes") or (msg.get("text") or "").encode()
                writer.write(data)
                await writer.drain()
        except (WebSocketDisconnect, OSError, RuntimeError):
            return

    async def to_browser():
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                await ws.send_bytes(data)
        except (WebSocketDisconnect, OSError, RuntimeError):
            return

    tasks = [asyncio.ensure_future(to_vnc()), asyncio.ensure_future(to_browser())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await opened.__aexit__(None, None, None)
        with contextlib.suppress(Exception):
            await ws.close()


def app() -> Starlette:
    """Mounted at `/compute/console` (before `/compute`, see compute.service.extra_apps)."""
    return Starlette(routes=[WebSocketRoute("/websockify", _websockify), Route("/", _index),
                             Route("/{path:path}", _page)])
