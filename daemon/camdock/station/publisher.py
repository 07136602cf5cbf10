"""Publishing to the station server over MQTT, from the durable outbox (TECH-NOTES §4).

Neither paho nor aiomqtt keeps anything across a restart, so durability lives in SQLite: the
publisher drains ``outbox`` in sequence order and marks rows delivered only after the broker's
PUBACK (aiomqtt's QoS 1 ``publish`` returns then). A broker outage of any length, or a daemon
restart, only delays delivery; duplicates after a reconnect are identifiable by event id.

The connection: MQTT 5 (3.1.1 when configured, or when the broker refuses 5 — with a return
code, or as RabbitMQ 3.10 does, by closing the socket without a CONNACK), a persistent session,
the retained ``online`` status published after every (re)connect with ``offline`` as the Last
Will for an unclean drop and published by the station itself on a clean stop, TLS and
credentials from config, the configured brokers tried in turn, reconnects with exponential
backoff and jitter. aiomqtt 2.x notices a
lost connection only through its message iterator, so one task reads messages (the roster)
while another publishes; either failing ends the connection and the loop reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from camdock.adapters.mqtt import Client, ClosedBeforeConnack, read_password, tls_params
from camdock.aio import wait_event
from camdock.catalog import outbox
from camdock.catalog.db import Store
from camdock.config import MqttSettings
from camdock.events import Topics

__all__ = ["Publisher"]

log = logging.getLogger(__name__)

BATCH = outbox.BATCH
SESSION_EXPIRY = 7 * 24 * 3600  # MQTT 5: the broker keeps our session (and subscriptions) a week
MAX_ROSTER_BYTES = 256 * 1024
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 60.0
OFFLINE_TIMEOUT = 3.0  # a clean stop waits this long for the broker's PUBACK of "offline"


class Publisher:
    """Keeps a connection to the broker and drains the outbox into it. Runs until cancelled."""

    def __init__(
        self,
        settings: MqttSettings,
        topics: Topics,
        store: Store,
        on_roster: Callable[[bytes], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.store = store
        self.on_roster = on_roster
        self.connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._states: dict[int, str] = {}
        self._alarm: str | None = None
        self._alarm_dirty = False
        self._dirty: set[int] = set()
        self._protocol = (
            aiomqtt.ProtocolVersion.V311
            if settings.protocol == "3.1.1"
            else aiomqtt.ProtocolVersion.V5
        )
        self._broker = 0  # index into settings.brokers(): the one tried next
        self.delivered = 0

    def notify(self) -> None:
        """New events are committed (call on the loop thread)."""
        self._wake.set()

    def set_alarm(self, text: str | None) -> None:
        """A station alarm that cannot wait for the outbox (the state disk is full): published
        retained on ``…/alarm``; None clears it."""
        self._alarm = text
        self._alarm_dirty = True
        self._wake.set()

    def set_bay_state(self, bay: int, payload: str) -> None:
        """The bay's current state; published retained, latest only."""
        self._states[bay] = payload
        self._dirty.add(bay)
        self._wake.set()

    def _client(self, host: str, port: int) -> aiomqtt.Client:
        s = self.settings
        password = read_password(s.password_file)
        tls = tls_params(s.ca_file, s.cert_file, s.key_file)
        will = aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=True)
        session: dict[str, Any]
        if self._protocol == aiomqtt.ProtocolVersion.V5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = SESSION_EXPIRY
            session = {"clean_start": False, "properties": props}
        else:
            session = {"clean_session": False}
        client = Client(
            host,
            port,
            identifier=s.client_id or f"camdock-{self.topics.station}",
            username=s.username,
            password=password,
            protocol=self._protocol,
            will=will,
            keepalive=s.keepalive,
            tls_params=tls,
            timeout=15,
            **session,
        )
        client.pending_calls_threshold = BATCH + 50  # a full batch in flight is expected
        return client

    async def run(self) -> None:
        """Connect, publish, reconnect with backoff; runs until cancelled. Each failure moves
        on to the next configured broker; the backoff grows once every broker has failed."""
        delay = BACKOFF_FIRST
        brokers = self.settings.brokers()
        while True:
            host, port = brokers[self._broker]
            where = f"{host}:{port}"
            try:
                log.info("connecting to MQTT broker %s (%s)", where, self._protocol.name)
                async with self._client(host, port) as client:
                    log.info("connected to MQTT broker %s", where)
                    delay = BACKOFF_FIRST
                    await self._session(client)
            except aiomqtt.MqttCodeError as exc:
                if self._v5() and exc.rc in (1, 132):
                    log.warning("broker %s refuses MQTT 5; using 3.1.1", where)
                    self._protocol = aiomqtt.ProtocolVersion.V311
                    continue
                log.warning("MQTT broker %s: %s", where, exc)
            except ClosedBeforeConnack as exc:
                if self._v5():
                    log.warning("%s (MQTT 5 not understood?); using 3.1.1", exc)
                    self._protocol = aiomqtt.ProtocolVersion.V311
                    continue
                log.warning("MQTT broker %s: %s", where, exc)
            except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
                log.warning("MQTT broker %s: %s", where, exc)
            finally:
                self.connected.clear()
            self._broker = (self._broker + 1) % len(brokers)
            if self._broker != 0:
                continue  # the next broker at once; the backoff is per round
            # Jitter keeps a fleet of stations from reconnecting in lockstep after an outage.
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - not crypto
            delay = min(delay * 2, BACKOFF_MAX)

    def _v5(self) -> bool:
        """Whether MQTT 5 is being tried and 3.1.1 may still be (``protocol = "5"``)."""
        return self._protocol == aiomqtt.ProtocolVersion.V5

    async def _session(self, client: aiomqtt.Client) -> None:
        # After every (re)connect: a broker restart published our will ("offline").
        await client.publish(self.topics.status, b"online", qos=1, retain=True)
        self._dirty = set(self._states)
        self._alarm_dirty = self._alarm is not None  # an alarm in force is retained again
        if self.on_roster is not None:
            await client.subscribe(self.topics.roster, qos=1)
        self.connected.set()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._watch(client), name="mqtt.watch")
                tg.create_task(self._flush(client), name="mqtt.flush")
                tg.create_task(self._housekeeping(), name="mqtt.housekeeping")
        except asyncio.CancelledError:
            await self._offline(client)
            raise
        except BaseExceptionGroup as group:
            # A lost connection surfaces in one task; hand the plain error to run()'s retry.
            first = _first(group)
            if isinstance(first, aiomqtt.MqttError | OSError):
                raise first from None
            raise

    async def _offline(self, client: aiomqtt.Client) -> None:
        """A clean stop: the retained status says ``offline`` before we disconnect (the Last
        Will covers only an unclean drop; a DISCONNECT discards it). Bounded: a broker that does
        not answer must not hold up the stop (systemd's TimeoutStopSec)."""
        try:
            async with asyncio.timeout(OFFLINE_TIMEOUT):
                await client.publish(self.topics.status, b"offline", qos=1, retain=True)
            log.info("published offline status")
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            log.warning("could not publish the offline status: %s", exc)

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Reads inbound messages; also the only way aiomqtt 2.x reports a lost connection."""
        async for message in client.messages:
            if message.topic.matches(self.topics.roster) and self.on_roster is not None:
                payload = message.payload
                if not isinstance(payload, bytes | bytearray):
                    payload = str(payload).encode()
                try:
                    self.on_roster(bytes(payload))
                except Exception:  # bulkhead: nothing from the network may end the publisher
                    log.exception("roster handling failed; the previous roster stays")

    async def _flush(self, client: aiomqtt.Client) -> None:
        while True:
            self._wake.clear()  # before reading, so an event committed meanwhile wakes us again
            if self._alarm_dirty:
                self._alarm_dirty = False
                alarm = (self._alarm or "").encode()  # empty and retained: no alarm
                await client.publish(self.topics.alarm, alarm, qos=1, retain=True)
            for bay in sorted(self._dirty):
                self._dirty.discard(bay)
                await client.publish(self.topics.bay_state(bay), self._states[bay], qos=1,
                                     retain=True)  # fmt: skip
            batch = await self.store.call(outbox.pending)
            if batch:
                # Published in sequence order; paho sends them in call order, PUBACKs follow.
                results = await asyncio.gather(
                    *(client.publish(r.topic, r.payload, qos=1, timeout=30) for r in batch),
                    return_exceptions=True,  # retrieve every failure, not just the first
                )
                if errors := [e for e in results if isinstance(e, BaseException)]:
                    raise errors[0]  # nothing of this batch is marked; all of it is resent
                await self.store.call(outbox.mark_delivered, [r.id for r in batch])
                self.delivered += len(batch)
                continue
            await wait_event(self._wake, 30)

    async def _housekeeping(self) -> None:
        while True:
            pruned = await self.store.call(outbox.prune, self.settings.retention_days)
            if pruned:
                log.info("pruned %d delivered events older than %d days", pruned,
                         self.settings.retention_days)  # fmt: skip
            await asyncio.sleep(3600)


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
