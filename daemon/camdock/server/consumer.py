"""The AMQP side of ``camdock server``: the quorum queue bound to the MQTT plugin's topic
exchange, several consumers competing on it, each reconnecting to the next node when its
node goes away.

A consumer takes up to ``batch`` messages (or what came within 50 ms), writes them in one
transaction (ingest.write_batch) and acknowledges them all (``multiple``) only after the
commit. A consumer that loses its node or its database leaves its unacknowledged messages to
the queue, which delivers them again, to it or to another: the index keeps one row per event
id, so that costs nothing. A message the consumer cannot even classify is rejected and counted
(contract.classify never raises); a batch the database refuses again and again is dead-lettered
by the queue after ``DELIVERY_LIMIT`` deliveries into ``<queue>.dead`` for a person to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiormq
import psycopg
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec
from pamqp.header import ContentHeader

from camdock import clock
from camdock.server.config import ServerConfig
from camdock.server.contract import Message, Rejected, classify, warm
from camdock.server.gaps import sweep_gaps
from camdock.server.ingest import BatchResult, write_batch
from camdock.server.schema import migrate

__all__ = ["DELIVERY_LIMIT", "Server", "Stats", "declare"]

log = logging.getLogger(__name__)

DELIVERY_LIMIT = 20
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 10.0


@dataclass
class Stats:
    """What the server has done since it started (the fleet view and the tests read it)."""

    inserted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    reconnects: int = 0


def binding_key(prefix: str) -> str:
    """The routing key pattern that catches every station's messages under ``prefix``."""
    return prefix.replace(".", "/").replace("/", ".") + ".v1.#"


async def declare(channel: AbstractChannel, cfg: ServerConfig) -> str:
    """The server's quorum queue (and its dead-letter queue), bound to ``amq.topic``. Declared
    before any station publishes: the MQTT plugin drops what no queue is bound to."""
    await channel.queue_declare(
        f"{cfg.queue}.dead", durable=True, arguments={"x-queue-type": "quorum"}
    )
    await channel.queue_declare(
        cfg.queue,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": f"{cfg.queue}.dead",
        },
    )
    await channel.queue_bind(cfg.queue, "amq.topic", routing_key=binding_key(cfg.prefix))
    return cfg.queue


def deliver_into(channel: AbstractChannel, inbox: asyncio.Queue[DeliveredMessage]) -> None:
    """Put each delivery straight into ``inbox`` from the channel's frame reader.

    aiormq starts a task per delivery for a consumer callback; at a shift change that task,
    not the message, was most of the client's cost (bench/RESULTS.md, issue 31). The reader
    reads the delivery's header and body as it does for a callback (``_read_content``); only
    the task is left out. Where this aiormq lacks those methods, the callback path is used.
    """
    read_frame = getattr(channel, "_get_frame", None)
    read_content = getattr(channel, "_read_content", None)
    if read_frame is None or read_content is None:  # pragma: no cover - another aiormq
        return

    async def on_deliver(frame: spec.Basic.Deliver) -> None:
        header = await read_frame()
        if not isinstance(header, ContentHeader):  # as aiormq's own reader refuses it
            raise ValueError(f"unexpected frame {header!r} instead of a content header")
        inbox.put_nowait(await read_content(frame, header))

    # _reader looks the handler up on the instance for each frame (aiormq 7.x: test_server.py).
    setattr(channel, "_on_deliver_frame", on_deliver)  # noqa: B010 - an instance override


class Server:
    """``camdock server``: consumers and the gap sweeper, until cancelled."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.stats = Stats()
        self.ready = asyncio.Event()  # every consumer is consuming
        self._consuming: set[int] = set()

    async def run(self) -> None:
        """Migrate the index, then consume and sweep until cancelled."""
        await asyncio.to_thread(migrate, self.cfg.dsn)
        await asyncio.to_thread(warm)
        async with asyncio.TaskGroup() as tg:
            for n in range(self.cfg.consumers):
                tg.create_task(self._consumer(n), name=f"server.consumer[{n}]")
            tg.create_task(self._sweeper(), name="server.gaps")

    async def _consumer(self, n: int) -> None:
        delay = BACKOFF_FIRST
        hosts = list(self.cfg.amqp)
        turn = n  # consumers start on different nodes, so one node's loss stops only some
        while True:
            url = hosts[turn % len(hosts)]
            where = url.split("@")[-1]
            try:
                async with await psycopg.AsyncConnection.connect(self.cfg.dsn) as db:
                    async with asyncio.timeout(5):
                        connection = await aiormq.connect(url)
                    try:
                        log.info("consumer %d connected to %s", n, where)
                        await self._consume(n, connection, db)
                        delay = BACKOFF_FIRST
                    finally:
                        with contextlib.suppress(Exception):
                            await connection.close()
            except asyncio.CancelledError:
                raise
            except (
                OSError,
                aiormq.exceptions.AMQPError,
                aiormq.exceptions.ChannelInvalidStateError,  # an ack on a channel just closed
                psycopg.OperationalError,
                ConnectionError,
                TimeoutError,
            ) as exc:
                log.warning("consumer %d on %s: %s", n, where, exc or type(exc).__name__)
            except Exception:  # bulkhead: one consumer's failure must not end the others
                log.exception("consumer %d on %s failed; reconnecting", n, where)
            finally:
                self._consuming.discard(n)
                self.ready.clear()
            self.stats.reconnects += 1
            turn += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - not crypto
            delay = min(delay * 2, BACKOFF_MAX)

    async def _consume(
        self, n: int, connection: aiormq.abc.AbstractConnection, db: psycopg.AsyncConnection[Any]
    ) -> None:
        channel = await connection.channel(publisher_confirms=False)
        await channel.basic_qos(prefetch_count=self.cfg.prefetch)
        queue = await declare(channel, self.cfg)
        inbox: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
        deliver_into(channel, inbox)

        async def put(message: DeliveredMessage) -> None:
            inbox.put_nowait(message)

        ok = await channel.basic_consume(queue, put)
        tag = ok.consumer_tag
        self._consuming.add(n)
        if len(self._consuming) == self.cfg.consumers:
            self.ready.set()
        try:
            while True:
                batch = await self._take(inbox, channel)
                items: list[tuple[str, Message]] = []
                for m in batch:
                    key = m.routing_key or ""
                    items.append(
                        (key, classify(self.cfg.prefix, key, m.body, self.cfg.max_message_bytes))
                    )
                result = await self._write(db, items)
                last = batch[-1].delivery_tag
                if last is not None:  # a Basic.Deliver always has one
                    await channel.basic_ack(last, multiple=True)  # after the commit, never before
                s = self.stats
                s.inserted += result.inserted
                s.duplicates += result.duplicates
                s.rejected.update(result.rejected)
                s.batches += 1
        finally:
            with contextlib.suppress(Exception):
                if tag and not channel.is_closed:
                    await channel.basic_cancel(tag)

    async def _write(
        self, db: psycopg.AsyncConnection[Any], items: list[tuple[str, Message]]
    ) -> BatchResult:
        """The batch in one transaction; if the index refuses it (a value valid by the contract
        but not for a column: a seq beyond 64 bits), each message alone, and the one refused
        is rejected and counted, so one hostile message never holds back its batch."""
        try:
            return await write_batch(db, items, clock.now())
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            pass
        total = BatchResult()
        for key, message in items:
            try:
                one = await write_batch(db, [(key, message)], clock.now())
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                station = getattr(message, "station", None)
                size = getattr(message, "size", 0)
                reason = f"refused by the index: {str(exc).splitlines()[0][:200]}"
                one = await write_batch(db, [(key, Rejected(station, reason, size))], clock.now())
            total.inserted += one.inserted
            total.duplicates += one.duplicates
            total.rejected.update(one.rejected)
        return total

    async def _take(
        self,
        inbox: asyncio.Queue[DeliveredMessage],
        channel: AbstractChannel,
    ) -> list[DeliveredMessage]:
        """The next batch: wait for one message, then take what else comes within 50 ms."""
        while True:
            # A node that dies closes the connection, and with it the channel, under us.
            if channel.is_closed or channel.connection.is_closed:
                raise ConnectionError("the connection to the broker is lost")
            # asyncio.timeout, not wait_for (which in 3.11 loses a cancel racing the get).
            try:
                async with asyncio.timeout(1.0):
                    first = await inbox.get()
                break
            except TimeoutError:
                continue
        batch = [first]
        deadline = asyncio.get_running_loop().time() + 0.05
        while len(batch) < self.cfg.batch:
            if inbox.empty():
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(left):
                        batch.append(await inbox.get())
                except TimeoutError:
                    break
            else:
                batch.append(inbox.get_nowait())
        return batch

    async def _sweeper(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.cfg.dsn, autocommit=True
                ) as db:
                    while True:
                        await sweep_gaps(db, clock.now(), self.cfg.gap_grace_seconds)
                        await asyncio.sleep(min(5.0, max(self.cfg.gap_grace_seconds / 4, 0.2)))
            except psycopg.OperationalError as exc:
                log.warning("gap sweeper: %s", exc)
                await asyncio.sleep(2)
