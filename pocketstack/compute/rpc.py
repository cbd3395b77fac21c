"""The compute RPC interface: how the API and the conductor reach a host agent.

Two verbs, as oslo.messaging's: `call(host, method, **kwargs)` waits for the result
(console output, consoles, each step of a move) and `cast(host, method, **kwargs)` only
queues the work (reboot, stop, snapshot...). Arguments are JSON-friendly (ids, strings,
dicts), never rows or sessions, so a RabbitMQ transport (topic `compute.<host>`, the
agent being `hosts.ComputeHost` in a remote process) replaces `LocalTransport` without
changing callers. Methods are `ComputeHost`'s public methods (docs/compute.md lists them).
"""
from __future__ import annotations

from typing import Any

from pocketstack.common.runtime import current


class HostUnavailable(Exception):
    """No agent answers for that host (not served here, or down)."""


class Transport:
    def call(self, host: str, method: str, **kwargs) -> Any:
        raise NotImplementedError

    def cast(self, host: str, method: str, **kwargs) -> None:
        raise NotImplementedError

    def cast_local(self, name: str, fn, *args, **kwargs) -> None:
        """Run conductor work (build, moves) off the API thread."""
        raise NotImplementedError


class LocalTransport(Transport):
    """Agents live in this process; casts run on the runtime's task runner."""

    def _target(self, host: str, method: str):
        from pocketstack.compute import hosts

        try:
            agent = hosts.get_host(host)
        except LookupError as exc:
            raise HostUnavailable(str(exc)) from None
        fn = getattr(agent, method, None)
        if fn is None or method.startswith("_"):
            raise AttributeError(f"compute agents have no method {method}")
        return fn

    def call(self, host, method, **kwargs):
        return self._target(host, method)(**kwargs)

    def cast(self, host, method, **kwargs):
        fn = self._target(host, method)
        current().tasks.submit(f"compute.{method}", fn, **kwargs)

    def cast_local(self, name, fn, *args, **kwargs):
        current().tasks.submit(name, fn, *args, **kwargs)


_transport: Transport = LocalTransport()


def transport() -> Transport:
    return _transport


def set_transport(t: Transport) -> None:
    global _transport
    _transport = t


def call(host: str, method: str, **kwargs) -> Any:
    return _transport.call(host, method, **kwargs)


def cast(host: str, method: str, **kwargs) -> None:
    _transport.cast(host, method, **kwargs)


def spawn(name: str, fn, *args, **kwargs) -> None:
    _transport.cast_local(name, fn, *args, **kwargs)
