"""What a message from a station must be before the server keeps it: its topic under the
prefix, its size, and its payload against the contract (docs/asyncapi.yaml, shipped beside this
module; a test keeps the two identical). A message that fails is a :class:`Rejected` with the
reason, never an exception: one hostile station must not stop a consumer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import yaml

from camdock.events import SCHEMA_VERSION

__all__ = [
    "CONTRACT",
    "MAX_MESSAGE_BYTES",
    "BayState",
    "Event",
    "Ignored",
    "Message",
    "Rejected",
    "StationAlarm",
    "Status",
    "classify",
    "routing_key_to_topic",
    "topic_to_routing_key",
    "warm",
]

CONTRACT = Path(__file__).with_name("asyncapi.yaml")
MAX_MESSAGE_BYTES = 64 * 1024  # the largest event a station writes is a few KiB


@dataclass(frozen=True)
class Event:
    """One event, valid against its message in the contract."""

    station: str
    body: dict[str, Any]
    size: int
    text: str = ""  # the payload as it came: the index keeps it (no second json.dumps)


@dataclass(frozen=True)
class Status:
    """A station's retained ``online``/``offline`` (the Last Will)."""

    station: str
    online: bool


@dataclass(frozen=True)
class StationAlarm:
    """A station's retained alarm text; empty clears it."""

    station: str
    text: str


@dataclass(frozen=True)
class BayState:
    """A bay's retained state."""

    station: str
    bay: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Ignored:
    """Ours, not a station's (the roster the server publishes)."""

    station: str


@dataclass(frozen=True)
class Rejected:
    """Not kept: why, and what it claimed to be (the station from its topic, if any)."""

    station: str | None
    reason: str
    size: int


Message = Event | Status | StationAlarm | BayState | Ignored | Rejected


def topic_to_routing_key(topic: str) -> str:
    """The AMQP routing key RabbitMQ's MQTT plugin gives an MQTT topic: ``/`` and ``.`` swap."""
    return topic.translate(_SWAP)


def routing_key_to_topic(key: str) -> str:
    """The MQTT topic a routing key came from (the swap is its own inverse)."""
    return key.translate(_SWAP)


_SWAP = str.maketrans({"/": ".", ".": "/"})


@cache
def _document() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    return doc


@cache
def _message_pointers() -> dict[str, str]:
    return {
        str(msg["name"]): f"/components/messages/{key}/payload"
        for key, msg in _document()["components"]["messages"].items()
    }


def _inline(node: Any, doc: dict[str, Any]) -> Any:
    """``node`` with every local ``$ref`` replaced by what it points at (the contract has no
    recursive references): validating then never resolves a reference, three times faster."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            return _inline(_resolve(doc, ref[1:]), doc)
        return {k: _inline(v, doc) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, doc) for v in node]
    return node


def _resolve(doc: dict[str, Any], pointer: str) -> Any:
    node: Any = doc
    for part in pointer.strip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


Check = Callable[[Any], Any]


@cache
def validator(pointer: str) -> Check:
    """A draft-7 check for one schema of the contract (AsyncAPI 3.0 schemas extend it),
    compiled to Python by fastjsonschema: some 20 µs an event where a validator that walks the
    schema takes 40 times that, which 2,000 events a second on two cores cannot afford."""
    doc = _document()
    check: Check = fastjsonschema.compile(_inline(_resolve(doc, pointer), doc))
    return check


def warm() -> int:
    """Compile every check of the contract now (the server calls it before it consumes): the
    first message of each type would otherwise wait for a compile of tens of ms, in the middle
    of a shift change's burst. Returns how many."""
    pointers = [*_message_pointers().values(), "/components/schemas/BayState"]
    for pointer in pointers:
        validator(pointer)
    return len(pointers)


def classify(
    prefix: str, routing_key: str, payload: bytes, max_bytes: int = MAX_MESSAGE_BYTES
) -> Message:
    """What one message from the exchange is, or why it is rejected."""
    topic = routing_key_to_topic(routing_key)
    head = [*prefix.split("/"), SCHEMA_VERSION]
    parts = topic.split("/")
    if parts[: len(head)] != head or len(parts) < len(head) + 2:
        return Rejected(None, "topic outside the stations' prefix", len(payload))
    station, kind, *rest = parts[len(head) :]
    if not station:
        return Rejected(None, "empty station id in the topic", len(payload))
    if len(payload) > max_bytes:
        return Rejected(station, f"oversized: {len(payload)} bytes > {max_bytes}", len(payload))
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected(station, "not UTF-8", len(payload))
    match kind, rest:
        case "status", []:
            if text not in ("online", "offline"):
                return Rejected(station, "status is neither online nor offline", len(payload))
            return Status(station, text == "online")
        case "alarm", []:
            return StationAlarm(station, text)
        case "roster", []:
            return Ignored(station)
        case "bays", [number, "state"]:
            return _bay_state(station, number, text, len(payload))
        case "events", [event_type]:
            return _event(station, event_type, text, len(payload))
    return Rejected(station, f"unknown topic {'/'.join([kind, *rest])}", len(payload))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None


def _bay_state(station: str, number: str, text: str, size: int) -> Message:
    body = _json(text)
    if not isinstance(body, dict):
        return Rejected(station, "bay state is not a JSON object", size)
    if problem := _problem("/components/schemas/BayState", body):
        return Rejected(station, f"bay state: {problem}", size)
    if body["station"] != station:
        return Rejected(station, f"station {body['station']!r} is not its topic's", size)
    if not number.isdigit() or int(number) != body["bay"]:
        return Rejected(station, f"bay {body['bay']} is not its topic's ({number})", size)
    return BayState(station, body["bay"], body)


def _event(station: str, event_type: str, text: str, size: int) -> Message:
    pointer = _message_pointers().get(event_type)
    if pointer is None or event_type in ("status", "alarm", "bayState", "roster"):
        return Rejected(station, f"unknown event type {event_type!r}", size)
    body = _json(text)
    if not isinstance(body, dict):
        return Rejected(station, "event is not a JSON object", size)
    if problem := _problem(pointer, body):
        return Rejected(station, f"{event_type}: {problem}", size)
    if body["type"] != event_type:
        return Rejected(station, f"type {body['type']!r} is not its topic's", size)
    if body["station"] != station:
        return Rejected(station, f"station {body['station']!r} is not its topic's", size)
    return Event(station, body, size, text)


def _problem(pointer: str, body: dict[str, Any]) -> str | None:
    try:
        validator(pointer)(body)
    except fastjsonschema.JsonSchemaException as exc:
        return str(getattr(exc, "message", exc))[:200]
    return None
