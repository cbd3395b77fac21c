"""The metadata path from an instance to the compute metadata API (169.254.169.254).

Two halves, as neutron splits haproxy and its metadata agent (ideas, not code):

- the **proxy** (`python -m pocketstack.network.metadata_proxy`), one per router namespace
  (behind a REDIRECT of 169.254.169.254:80 from `qr-` interfaces) and per DHCP namespace
  of a network with an isolated subnet (on 169.254.169.254:80 itself). It knows only where
  it runs: it drops any identity headers the guest sent, adds `X-Forwarded-For: <source
  address>` and `X-Pocketstack-Router-ID` or `X-Pocketstack-Network-ID`, and forwards the
  request over the unix socket `<run_dir>/metadata.sock` (a file, so it crosses network
  namespaces; root-only);
- the **agent** (`MetadataAgent`, a thread of the pocketstack process) listening on that
  socket: it finds the port holding the source address on the router's interface networks
  (or the network), hence the instance (`device_id` of a `compute:` port), and calls the
  compute metadata API with `X-Instance-ID`, `X-Tenant-ID` and the HMAC signature.
  Unknown sources get 404.

Proxies run in their own session and outlive a pocketstack restart (the agent's socket is
re-created, each request connects anew).
"""
from __future__ import annotations

import argparse
import http.client
import logging
import os
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger("pocketstack.network.metadata")

METADATA_IP = "169.254.169.254"
ROUTER_PORT = 9697  # where the router namespace's REDIRECT sends 169.254.169.254:80
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "host", "content-length"}
IDENTITY = {"x-instance-id", "x-instance-id-signature", "x-tenant-id", "x-forwarded-for",
            "x-pocketstack-router-id", "x-pocketstack-network-id"}
MAX_BODY = 64 * 1024


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class _Relay(BaseHTTPRequestHandler):
    """Shared by both halves: read one request, hand it on, copy the answer back."""

    protocol_version = "HTTP/1.0"
    server_version = "pocketstack-metadata"

    def log_message(self, fmt, *args):  # quiet; errors are logged explicitly
        return

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._plain(413, "Request Entity Too Large")
            return None
        return self.rfile.read(length) if length else b""

    def _plain(self, code: int, title: str, detail: str = "") -> None:
        body = f"{code} {title}\n\n{detail}\n".encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _copy_back(self, resp: http.client.HTTPResponse) -> None:
        data = resp.read()
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in HOP and key.lower() not in ("server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def forward(self, conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict, what: str) -> None:
        """Send the request on over `conn` and copy the answer back (502 when it is down)."""
        headers["Content-Length"] = str(len(body))
        try:
            conn.request(self.command, path, body=body, headers=headers)
            self._copy_back(conn.getresponse())
        except OSError as exc:
            log.warning("%s unreachable: %s", what, exc)
            self._plain(502, "Bad Gateway", "The metadata service is not available.")
        finally:
            conn.close()

    def client_headers(self) -> dict:
        """The request's headers without hop-by-hop ones and without any identity claim."""
        return {k: v for k, v in self.headers.items() if k.lower() not in HOP | IDENTITY}

    def do_GET(self):
        body = self._body()
        if body is not None:
            self.relay(body)

    do_POST = do_HEAD = do_PUT = do_DELETE = do_GET

    def relay(self, body: bytes):  # pragma: no cover - overridden
        raise NotImplementedError


# ---------------------------------------------------------------------------- proxy (namespace side)
class _ProxyHandler(_Relay):
    def relay(self, body: bytes):
        headers = {**self.client_headers(), "X-Forwarded-For": self.client_address[0],
                   self.server.id_header: self.server.id_value}
        self.forward(_UnixConnection(self.server.socket_path), self.path, body, headers, "metadata agent")


def serve_proxy(socket_path: str, bind: str, port: int, *, router_id: str = "", network_id: str = "",
                pid_file: str = "") -> None:
    server = ThreadingHTTPServer((bind, port), _ProxyHandler)
    server.daemon_threads = True
    server.socket_path = socket_path
    server.id_header, server.id_value = (("X-Pocketstack-Router-ID", router_id) if router_id
                                         else ("X-Pocketstack-Network-ID", network_id))
    if pid_file:  # written once listening: the backend waits for it
        tmp = Path(pid_file + ".tmp")
        tmp.write_text(str(os.getpid()))
        os.replace(tmp, pid_file)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pocketstack.network.metadata_proxy",
                                description="Forward 169.254.169.254 requests to the pocketstack metadata agent")
    p.add_argument("--socket", required=True)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--port", type=int, default=80)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--router-id", default="")
    who.add_argument("--network-id", default="")
    p.add_argument("--pid-file", default="")
    args = p.parse_args(argv)
    serve_proxy(args.socket, args.bind, args.port, router_id=args.router_id, network_id=args.network_id,
                pid_file=args.pid_file)
    return 0


# ---------------------------------------------------------------------------- agent (pocketstack process)
def find_instance(router_id: str, network_id: str, address: str) -> dict | None:
    """The `compute:` port holding `address` behind the router (its interface networks) or
    on the network: {"device_id", "project_id", ...}, or None."""
    from pocketstack.network import core, routers

    if router_id:
        view = routers.router_sync_data(router_id)
        nets = sorted({p["network_id"] for p in (view or {}).get("interfaces", [])})
    else:
        nets = [network_id] if network_id else []
    port = core.port_by_fixed_ip(nets, address) if nets and address else None
    if port is None or not port["device_owner"].startswith("compute:") or not port["device_id"]:
        return None
    return port


class _AgentHandler(_Relay):
    def relay(self, body: bytes):
        agent: MetadataAgent = self.server.agent
        try:
            port = find_instance(self.headers.get("X-Pocketstack-Router-ID", ""),
                                 self.headers.get("X-Pocketstack-Network-ID", ""),
                                 self.headers.get("X-Forwarded-For", "").split(",")[0].strip())
        except Exception:
            log.exception("metadata: instance lookup failed")
            return self._plain(500, "Internal Server Error", "An unknown error has occurred.")
        if port is None or not agent.secret:
            return self._plain(404, "Not Found", "The resource could not be found.")
        from pocketstack.compute.api.metadata import sign

        headers = {**self.client_headers(), "X-Instance-ID": port["device_id"], "X-Tenant-ID": port["project_id"],
                   "X-Instance-ID-Signature": sign(port["device_id"], agent.secret),
                   "X-Forwarded-For": self.headers.get("X-Forwarded-For", "")}
        self.forward(http.client.HTTPConnection(agent.api_host, agent.api_port, timeout=30), "/metadata" + self.path,
                     body, headers, "metadata API")


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class MetadataAgent:
    """The unix-socket end in the pocketstack process (started by the Dataplane)."""

    def __init__(self, socket_path: str | Path, api_host: str, api_port: int, secret: str):
        self.socket_path = Path(socket_path)
        self.api_host, self.api_port, self.secret = api_host, api_port, secret
        self._server: _UnixServer | None = None

    def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        old = os.umask(0o177)  # root only: whoever reaches it may claim any network's identity
        try:
            self._server = _UnixServer(str(self.socket_path), _AgentHandler)
        finally:
            os.umask(old)
        self._server.agent = self
        threading.Thread(target=self._server.serve_forever, name="metadata-agent", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.socket_path.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
