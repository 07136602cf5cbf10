"""MQTT through aiomqtt (TECH-NOTES §4): the client with its socket watches kept in order, TLS
and the broker password from the config. The station's publisher (station/publisher.py) and
``camdock monitor`` connect through it; what to publish, and when, is theirs.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

__all__ = ["Client", "ClosedBeforeConnack", "read_password", "tls_params"]


class ClosedBeforeConnack(aiomqtt.MqttError):
    """The broker closed the connection without answering CONNECT (RabbitMQ 3.10's MQTT plugin
    does so to an MQTT 5 CONNECT, where a broker that knows 5 would answer a reason code)."""


class Client(aiomqtt.Client):
    """aiomqtt's client with its socket watches kept in order (issue 12, item 8).

    aiomqtt 2.5 defers ``add_writer`` to the loop (paho may call from the connect thread) but
    removes writers at once and never on close. Under a broker restart storm a deferred
    ``add_writer`` then runs after its socket was closed ("Exception in callback
    BaseSelectorEventLoop.add_writer": EBADF), or after the writer was already unregistered,
    leaving a watch on a closed descriptor that the next connection's socket reuses. Here
    every watch change runs on the loop, in order, and only while the socket is still the
    client's open socket; closing drops both watches.
    """

    def _soon(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn`` now on the loop's thread, else next on the loop (in call order)."""
        try:
            here = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            here = False
        if here:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        def writable() -> None:
            try:
                client.loop_write()
            except Exception as exc:  # noqa: BLE001 - aiomqtt's rule: the connection broke
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def watch() -> None:
            fd = sock.fileno()
            if fd >= 0 and self._client.socket() is sock:  # still open, still ours
                self._loop.add_writer(fd, writable)

        self._soon(watch)

    def _on_socket_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        fd = sock.fileno()
        if fd >= 0:
            self._soon(self._loop.remove_writer, fd)

    def _on_disconnect(self, client: Any, userdata: Any, *args: Any, **kwargs: Any) -> None:
        # aiomqtt ignores a disconnect before CONNACK, so CONNECT only times out (15 s); say
        # at once that the broker hung up, so the publisher can try MQTT 3.1.1 or another host.
        if not self._connected.done():
            self._connected.set_exception(
                ClosedBeforeConnack(
                    f"{self._hostname}:{self._port} closed the connection without a CONNACK"
                )
            )
            return
        super()._on_disconnect(client, userdata, *args, **kwargs)

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        self._on_socket_unregister_write(client, userdata, sock)
        super()._on_socket_close(client, userdata, sock)


def tls_params(
    ca_file: Path | None, cert_file: Path | None, key_file: Path | None
) -> aiomqtt.TLSParameters | None:
    """TLS when a CA is given: the broker's certificate and host name are checked, and a client
    certificate is presented when one is configured."""
    if ca_file is None:
        return None
    return aiomqtt.TLSParameters(
        ca_certs=str(ca_file),
        certfile=str(cert_file) if cert_file else None,
        keyfile=str(key_file) if key_file else None,
        cert_reqs=ssl.CERT_REQUIRED,  # and the host name is checked (tls_insecure off)
    )


def read_password(path: Path | None) -> str | None:
    """The broker password from its root-only file, or None."""
    return path.read_text().strip() if path is not None else None
