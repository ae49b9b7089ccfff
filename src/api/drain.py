"""Stopping without dropping requests: a drain period, then an empty listen queue.

Stock gunicorn, on SIGTERM, closes its listening socket at once: a balancer that still
routes here gets "connection refused", and the connections the kernel had already
accepted into the listen queue, but no worker had picked up yet, are reset when the
last worker closes the socket. Those are requests sent and never answered (a few per
thousand under load). With the hooks below (wired in src/api/server.py), SIGTERM:

1. drains for HVS_DRAIN_SECONDS: /ready answers 503, so Kubernetes and other balancers
   stop routing here, while every request that still arrives is served, each on a
   connection closed after its response, so no idle keep-alive connection is left to
   race the shutdown;
2. refuses new connections at once (never sent, so never lost), and waits until the
   workers have accepted every connection already in the listen queue;
3. goes on with gunicorn's graceful stop: in-flight requests finish, exit status 0.

A second SIGTERM skips the rest of the drain; SIGINT and SIGQUIT still stop at once. The
drain plus in-flight work must fit the grace period (`docker stop`: 10 s, Kubernetes:
30 s) and should be at least the keep-alive timeout.

Step 2 binds the listening socket to a network device its clients do not use
(SO_BINDTODEVICE, unprivileged since Linux 5.7; elsewhere it is skipped with a warning):
`lo` for a server on 0.0.0.0. Clients that reach such a server over loopback (a sidecar
proxy, the image's own HEALTHCHECK) are not refused; for them the drain period is what
stops traffic before the close.

This leans on gunicorn 26's arbiter (its `handle_term`, `SIG_QUEUE` and `LISTENERS`), so
it is checked again whenever gunicorn's pin moves: tests/container/run_container_tests.sh.
"""

from __future__ import annotations

import ipaddress
import mmap
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

_TCP_INFO_QUEUED = struct.Struct("=I")  # tcpi_unacked: a listener's accept-queue length
_TCP_INFO_QUEUED_OFFSET = 24
_SETTLE_SECONDS = 0.05
"""Time for handshakes already answered (SYN-ACK sent) to complete and join the queue."""
_DRAINING_BODY = orjson.dumps(
    {
        "error": {
            "code": "draining",
            "message": "the server is shutting down; send new requests to another instance",
            "details": [],
        }
    }
)


class _SharedFlag:
    """One byte of anonymous shared memory: set in the master, read by every worker."""

    def __init__(self) -> None:
        self._memory = mmap.mmap(-1, 1)  # MAP_SHARED: forked workers see later writes

    def set(self) -> None:
        self._memory[0] = 1

    def __bool__(self) -> bool:
        return self._memory[0] == 1


class Drain:
    """The drain of one server: made in the master before the first fork (gunicorn's
    `on_starting`), so every worker inherits the same shared flag."""

    def __init__(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"the drain must last >= 0 s, got {seconds}")
        self.seconds = seconds
        self._flag = _SharedFlag()

    @property
    def draining(self) -> bool:
        return bool(self._flag)

    # ----------------------------------------------------------------------- master

    def install(self, server: Any) -> None:
        """`when_ready` hook (master, before any worker is forked): take over SIGTERM."""
        flag, drain_seconds = self._flag, self.seconds
        graceful_stop: Callable[[], None] = server.handle_term  # raises StopIteration
        timer: threading.Timer | None = None

        def handle_term() -> None:
            nonlocal timer
            if not flag and drain_seconds > 0:
                flag.set()
                server.log.info(
                    "SIGTERM: draining for %.1f s (/ready answers 503, requests are still served)",
                    drain_seconds,
                )
                # The main loop must keep running (reaping, other signals), so no sleep
                # here: the drain's end arrives as a second SIGTERM, like an impatient
                # operator's.
                timer = threading.Timer(
                    drain_seconds, server.SIG_QUEUE.put_nowait, [signal.SIGTERM]
                )
                timer.daemon = True
                timer.start()
                return
            flag.set()
            if timer is not None:
                timer.cancel()
            started = time.monotonic()
            left = close_listen_queues(server.LISTENERS)
            if left is None:
                server.log.warning(
                    "cannot refuse new connections here (needs Linux 5.7+): connections "
                    "still queued when the listener closes will be reset"
                )
            elif left:
                server.log.warning("stopping with %d connection(s) still queued", left)
            else:
                server.log.info(
                    "new connections refused, listen queue empty after %.0f ms; stopping "
                    "gracefully",
                    1000 * (time.monotonic() - started),
                )
            graceful_stop()

        server.handle_term = handle_term

    # ---------------------------------------------------------------------- workers

    def wrap_app(self, worker: Any) -> None:
        """`post_worker_init` hook: while draining, /ready answers 503 before the app sees
        it."""
        app = worker.wsgi
        flag = self._flag

        def app_aware_of_drain(environ: dict, start_response: Callable) -> Iterable[bytes]:
            if environ.get("PATH_INFO") == "/ready" and flag:
                start_response(
                    "503 Service Unavailable",
                    [
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(_DRAINING_BODY))),
                    ],
                )
                return [_DRAINING_BODY]
            return app(environ, start_response)

        worker.wsgi = app_aware_of_drain

    def close_connection_if_draining(self, request: Any) -> None:
        """`pre_request` hook: while draining, answer with `Connection: close`."""
        if self._flag:
            request.force_close()


def close_listen_queues(listeners: Iterable[Any], timeout_seconds: float = 2.0) -> int | None:
    """Refuse new connections, then wait until the workers have accepted every queued one.

    Returns how many were still queued at the timeout (0: the queues emptied), or None
    when new connections cannot be refused here (not Linux, or a kernel before 5.7).
    """
    tcp = [
        listener for listener in listeners if listener.family in (socket.AF_INET, socket.AF_INET6)
    ]
    try:
        for listener in tcp:
            device = _device_without_clients(listener)
            if device is None:
                return None
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device.encode())
    except (AttributeError, OSError, ValueError):  # no SO_BINDTODEVICE; refused; odd address
        return None
    time.sleep(_SETTLE_SECONDS)
    deadline = time.monotonic() + timeout_seconds
    while (queued := sum(_queued_connections(listener) for listener in tcp)) > 0:
        if time.monotonic() >= deadline:
            return queued
        time.sleep(0.005)
    return 0


def _device_without_clients(listener: Any) -> str | None:
    """A network device the listener's clients do not come through.

    A socket bound to a device only sees packets that arrive on it: every other SYN gets
    a reset ("connection refused"), while connections already queued or half-open stay.
    Clients of a server on 0.0.0.0 come from outside (a container's eth0): `lo`. Clients
    of a server on 127.0.0.1 come through `lo`: any other device.
    """
    if not ipaddress.ip_address(listener.getsockname()[0]).is_loopback:
        return "lo"
    return next((name for _, name in socket.if_nameindex() if name != "lo"), None)


def _queued_connections(listener: Any) -> int:
    info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return _TCP_INFO_QUEUED.unpack_from(info, _TCP_INFO_QUEUED_OFFSET)[0]
