"""A small QMP (QEMU Machine Protocol) client over a unix socket.

QMP is line-delimited JSON: on connect QEMU sends a greeting (`{"QMP": {...}}`), the
client sends `qmp_capabilities`, then each `{"execute": cmd, "arguments": {...}, "id": n}`
gets `{"return": ...}` or `{"error": {"class", "desc"}}` with the same id; asynchronous
`{"event": ...}` messages can arrive at any time and are kept in `events`.

A connection is short-lived (one per driver operation): QEMU's QMP chardev serves one
client at a time, and short connections survive a restart of pocketstack for free.
"""
from __future__ import annotations

import json
import socket
import time


class QMPError(Exception):
    """QEMU answered with an error, or the monitor could not be reached."""

    def __init__(self, message: str, error_class: str = ""):
        super().__init__(message)
        self.error_class = error_class


class QMPClient:
    def __init__(self, path: str, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        self.greeting: dict = {}

    # -- connection ----------------------------------------------------------------------
    def connect(self) -> "QMPClient":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as exc:
            s.close()
            raise QMPError(f"cannot reach the QEMU monitor at {self.path}: {exc}") from None
        self.sock = s
        try:
            self.greeting = self._read_message(time.monotonic() + self.timeout)
        except (TimeoutError, QMPError, OSError) as exc:
            self.close()
            raise QMPError(f"no QMP greeting from {self.path}: {exc or 'timeout'}") from None
        if "QMP" not in self.greeting:
            self.close()
            raise QMPError(f"unexpected QMP greeting: {self.greeting}")
        self.execute("qmp_capabilities")
        return self

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self) -> "QMPClient":
        return self if self.sock is not None else self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- protocol ------------------------------------------------------------------------
    def _read_message(self, deadline: float | None = None) -> dict:
        assert self.sock is not None
        while b"\n" not in self._buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no QMP message in time")
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TimeoutError("no QMP message in time") from None
            finally:
                if deadline is not None and self.sock is not None:
                    self.sock.settimeout(self.timeout)
            if not chunk:
                raise QMPError("QEMU closed the monitor connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise QMPError(f"bad QMP message: {line[:200]!r}") from None

    def execute(self, command: str, arguments: dict | None = None, *, allow_close: bool = False):
        """Run one command; its `return` value. `allow_close`: QEMU may exit in answer (quit)."""
        if self.sock is None:
            raise QMPError("not connected")
        self._id += 1
        msg = {"execute": command, "id": self._id}
        if arguments:
            msg["arguments"] = arguments
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as exc:
            if allow_close:
                return None
            raise QMPError(f"QMP {command}: {exc}") from None
        while True:
            try:
                reply = self._read_message()
            except (QMPError, OSError):
                if allow_close:
                    return None
                raise
            except TimeoutError:
                raise QMPError(f"QMP {command}: QEMU did not answer within {self.timeout:.0f} s") from None
            if "event" in reply:
                self.events.append(reply)
                continue
            if reply.get("id") != self._id:
                continue
            if "error" in reply:
                err = reply["error"]
                raise QMPError(f"QMP {command}: {err.get('desc', err)}", err.get("class", ""))
            return reply.get("return")

    def wait_event(self, name: str, timeout: float, match=None) -> dict | None:
        """Wait for event `name` (optionally `match(event)` true); None after `timeout`."""
        for ev in list(self.events):
            if ev.get("event") == name and (match is None or match(ev)):
                self.events.remove(ev)
                return ev
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self._read_message(deadline)
            except TimeoutError:
                return None
            if msg.get("event") == name and (match is None or match(msg)):
                return msg
            if "event" in msg:
                self.events.append(msg)
        return None


def command(path: str, name: str, arguments: dict | None = None, timeout: float = 10.0):
    """One command on a fresh connection."""
    with QMPClient(path, timeout) as q:
        return q.execute(name, arguments)
