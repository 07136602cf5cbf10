"""The custody log: a tamper-evident, hash-chained record of what happened to each recording
(REG-7.1; invariant 6 of ARCHITECTURE.md).

Every entry holds the SHA-256 of the previous entry's hash and its own canonical content, so
editing, deleting or reordering any entry breaks the chain from there on; ``verify`` finds it.
Entries are appended inside the same transaction as the change they record (a recording stored
and verified, a camera copy cleared), under SQLite's write lock, so concurrent bays still form
one chain.

Each entry from m021 on also names the channel the act came through (``CHANNELS``: the console,
the command line through the daemon, or the daemon's own automatic acts); the channel is part of
the entry's hash, and an entry from before carries none, so old entries verify as they were.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlite_utils import Database

from camdock.catalog import chainkey, rowchain
from camdock.catalog.db import Row, each, one, rows, rows_as
from camdock.clock import utcnow

__all__ = [
    "CHANNELS",
    "GENESIS",
    "Action",
    "Entry",
    "KeyCheck",
    "append",
    "baseline",
    "chain_left_over",
    "channel",
    "count",
    "has_staff_marks",
    "head",
    "history",
    "through",
    "verify",
    "verify_heads",
    "verify_keys",
]

GENESIS = "0" * 64
BASELINE_ROWS = 200  # rows per baseline entry
CHANNELS = ("console", "cli", "daemon")

# The channel this thread's (or task's) acts come through: the control socket sets it per
# request (station/control.py); anything else a process does by itself is the daemon's own.
_CHANNEL: ContextVar[str] = ContextVar("custody_channel", default="daemon")
# Catalog connections whose custody_log has the channel column (m021 ran): asked once each.
_HAS_CHANNEL: weakref.WeakKeyDictionary[Database, bool] = weakref.WeakKeyDictionary()


def channel() -> str:
    """The channel entries written now name."""
    return _CHANNEL.get()


@contextmanager
def through(name: str) -> Iterator[None]:
    """Entries written inside name ``name`` as their channel (one of ``CHANNELS``)."""
    if name not in CHANNELS:
        raise ValueError(f"no channel {name!r}")
    token = _CHANNEL.set(name)
    try:
        yield
    finally:
        _CHANNEL.reset(token)


def _channel_column(db: Database) -> bool:
    known = _HAS_CHANNEL.get(db)
    if known:
        return True
    # A migration before m021 may append entries: then there is no column to fill yet.
    has = any(c[1] == "channel" for c in db.execute("PRAGMA table_info(custody_log)"))
    if has:
        _HAS_CHANNEL[db] = True
    return has


class Action(StrEnum):
    """What a custody entry records: a closed set (REG-7.1 names store, access, copy, use,
    destroy). An entry's action is one of these or it is not written."""

    STORE = "store"  # verified in its destinations (REG-4.1.2)
    CLEAR = "clear"  # the camera's copy deleted, after the above
    ATTRIBUTE = "attribute"  # re-filed under the officer who made it (REG-4.2.4)
    HOLD = "hold-place"  # kept past its window (REG-4.3.1)
    RELEASE = "hold-release"
    DESTROY = "destroy"  # every copy removed (REG-4.3.1)
    # Issue 28: the intent to destroy, committed before the first copy is removed (live →
    # destroying), and a destruction that stopped part-way (a drive's error, a hold since).
    DESTROY_START = "destroy-start"
    DESTROY_STOP = "destroy-stop"
    SEAL = "seal"  # a duty day's archives verified (REG-4.2.5)
    CONFIRM = "seal-confirm"  # a supervisor confirmed a seal (REG-4.2.5)
    PLAIN_REMOVED = "plain-removed"  # a sealed day's plain files removed from a drive
    RESTORE = "catalog-restore"  # the catalog rebuilt from a drive's backup (REG-4.3.2)
    AUDIT = "audit"  # an audit ran (REG-7.2), naming the auditor
    REPAIR = "repair"  # a damaged copy replaced from a good one
    DAMAGE = "damage"  # a copy found missing, changed or unreadable (the scrub, REG-7.2)
    # The access/copy workflow (REG-5, Annexes 2 and 3)
    REQUEST = "request"  # drafted, with its recordings
    SUBMIT = "submit"
    CONSULT = "consult"  # the public-relations unit consulted (REG-6)
    APPROVE = "approve"
    DENY = "deny"
    SCHEDULE = "schedule"
    VIEW = "view"  # a supervised viewing
    COPY = "copy"  # a verified copy made
    ACKNOWLEDGE = "acknowledge"  # the applicant signed for it
    CLOSE = "close"
    EXPIRE = "expire"
    DESTROY_PROPOSE = "destroy-propose"  # a custodian's list of recordings due (issue 27)
    DESTROY_APPROVE = "destroy-approve"  # an approver (someone else) approved it
    DESTROY_EXECUTE = "destroy-execute"  # an approved list executed: what each recording became
    AUTHORISE = "destroy-authorise"  # a standing authorisation recorded by its approver
    REVOKE = "destroy-revoke"  # a standing authorisation revoked by an approver (issue 27, gap 3)
    VIEW_START = "view-start"  # a streamed viewing opened (its register line comes at its end)
    DRAFT_EXPIRE = "draft-expire"  # an unsubmitted draft expired, its footage no longer held
    REFUSED = "refused"  # an attempt the rules refused (REG-7.1: refusals are recorded too)
    FREEZE = "freeze"  # the catalog and the chain disagree about a recording: nothing acts on it
    RESOLVE = "audit-resolve"  # an auditor resolved a freeze: the rows as the chain has them
    STAFF = "staff"  # who may act changed: a person, a role, a password, a second factor
    # The state rows were left in by a change whose own entry came before it (catalog/rowchain)
    STATE = "state"


def _message(prev: str, entry: dict[str, Any]) -> str:
    canonical = json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"{prev}\n{canonical}"


def _digest(prev: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(_message(prev, entry).encode()).hexdigest()


def append(
    db: Database, action: Action, recording_id: int | None, actor: str, details: dict[str, Any]
) -> str:
    """Add an entry; call inside a write transaction (BEGIN IMMEDIATE holds the chain's tail)."""
    action = Action(action)  # a typo is an error here, never a new kind of entry
    return _append(db, action, recording_id, actor, details, rowchain.take(db))


_INSERT = (
    "INSERT INTO custody_log (time, action, recording_id, actor, details, prev_hash, "
    "hash, rows, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_CHANNEL = (
    "INSERT INTO custody_log (time, action, recording_id, actor, details, "
    "prev_hash, hash, rows, mac, channel) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _append(
    db: Database,
    action: Action,
    recording_id: int | None,
    actor: str,
    details: dict[str, Any],
    states: list[rowchain.State],
) -> str:
    last = one(db, "SELECT hash FROM custody_log ORDER BY id DESC LIMIT 1")
    prev = last["hash"] if last else GENESIS
    entry: dict[str, Any] = {
        "time": utcnow(),
        "action": action.value,
        "recording_id": recording_id,
        "actor": actor,
        "details": details,
    }
    if states:  # the rows this change left, chained with it (catalog/rowchain)
        entry["rows"] = states
    if _channel_column(db):  # hashed with the entry; entries from before m021 have none
        entry["channel"] = channel()
    if (key := chainkey.current()) is not None:  # what an appender without the key cannot make
        entry["mac"] = chainkey.mac(key, _message(prev, entry))
    digest = _digest(prev, entry)
    done = db.execute(
        _INSERT_CHANNEL if "channel" in entry else _INSERT,
        (
            entry["time"],
            action.value,
            recording_id,
            actor,
            json.dumps(details, sort_keys=True, ensure_ascii=False),
            prev,
            digest,
            json.dumps(states, sort_keys=True, ensure_ascii=False) if states else None,
            entry.get("mac"),
            *((entry["channel"],) if "channel" in entry else ()),
        ),
    )
    if states:
        rowchain.index(db, int(done.lastrowid or 0), states)
    return digest


def has_staff_marks(db: Database, acts: tuple[str, ...], unverified: str) -> bool:
    """Whether the catalog is a station's (issue 27): staff kept in it (a ``staff`` table with
    rows, roster roles), or one of ``acts`` recorded through the console or the daemon's CLI
    channel by an actor not named ``… unverified``."""
    tables = set(db.table_names())
    for table, query in (
        ("staff", "SELECT 1 FROM staff LIMIT 1"),
        ("roster_roles", "SELECT 1 FROM roster_roles LIMIT 1"),
    ):
        if table in tables and db.execute(query).fetchone():
            return True
    if not _channel_column(db):
        return False
    found = db.execute(
        "SELECT 1 FROM custody_log WHERE channel IN ('console', 'cli') AND actor NOT LIKE ? "
        "AND action IN (SELECT value FROM json_each(?)) LIMIT 1",
        (f"%{unverified}", json.dumps(acts)),
    ).fetchone()
    return found is not None


def chain_left_over(db: Database) -> None:
    """At commit: the rows changed after this transaction's last entry get an entry of their
    own, so no change to a covered row is ever committed unchained."""
    if states := rowchain.take(db):
        _append(db, Action.STATE, None, "camdock", {}, states)


def baseline(db: Database) -> None:
    """Chain every covered row as it is (a catalog from before the chain covered rows), a few
    hundred rows to an entry (one row's state is found by reading one entry)."""
    states = rowchain.snapshot_all(db)
    for i in range(0, len(states), BASELINE_ROWS):
        _append(
            db, Action.STATE, None, "camdock", {"baseline": True}, states[i : i + BASELINE_ROWS]
        )


def _entry_of(r: dict[str, Any]) -> dict[str, Any]:
    """A stored entry as it was hashed and MACed (``_append``): JSON, without its MAC."""
    entry = {
        "time": r["time"],
        "action": r["action"],
        "recording_id": r["recording_id"],
        "actor": r["actor"],
        "details": json.loads(r["details"]),
    }
    if r["rows"] is not None:
        entry["rows"] = json.loads(r["rows"])
    if r.get("channel") is not None:  # in the entry before its MAC was made
        entry["channel"] = r["channel"]
    return entry


def verify(db: Database) -> list[str]:
    """Every problem with the chain and with its coverage of the catalog; empty when intact."""
    problems = []
    prev = GENESIS
    for r in each(db, "SELECT * FROM custody_log ORDER BY id"):
        entry = _entry_of(r)
        if r["mac"] is not None:
            entry["mac"] = r["mac"]
        if r["prev_hash"] != prev:
            problems.append(
                f"entry {r['id']}: does not follow the entry before it "
                "(an entry was removed or reordered)"
            )
        if _digest(r["prev_hash"], entry) != r["hash"]:
            problems.append(f"entry {r['id']}: content does not match its hash (altered)")
        prev = r["hash"]
    problems += _rows_match_entries(db)
    problems += rowchain.differences(db)
    # Each recording's own entries, found through the custody log's recording index.
    own = "EXISTS (SELECT 1 FROM custody_log c WHERE c.recording_id = r.id AND c.action = '{}')"
    for r in each(
        db,
        f"SELECT id, relpath, cleared_at, destroyed_at, {own.format('store')} AS store, "  # noqa: S608
        f"{own.format('clear')} AS clear, {own.format('destroy')} AS destroy "
        "FROM recordings r ORDER BY id",
    ):
        if not r["store"]:
            problems.append(f"recording {r['id']} ({r['relpath']}): no 'store' entry")
        if r["cleared_at"] and not r["clear"]:
            problems.append(f"recording {r['id']} ({r['relpath']}): cleared, no 'clear' entry")
        if r["destroyed_at"] and not r["destroy"]:
            problems.append(
                f"recording {r['id']} ({r['relpath']}): destroyed, no 'destroy' entry (REG-4.3.1)"
            )
    return problems


def count(db: Database) -> tuple[int, int]:
    """(custody entries, recordings): what an audit covered."""
    entries = db.execute("SELECT count(*) FROM custody_log").fetchone()[0]
    recordings = db.execute("SELECT count(*) FROM recordings").fetchone()[0]
    return int(entries), int(recordings)


@dataclass(frozen=True)
class Entry(Row):
    """One custody entry as a recording's history shows it (REG-7.1)."""

    time: str
    action: Action
    actor: str
    channel: str | None  # console, cli, daemon; None for entries from before m021
    details: str  # JSON as chained

    def details_json(self) -> Any:
        """The entry's details, parsed (JSON leaving the catalog)."""
        return json.loads(self.details)


def history(db: Database, recording_id: int) -> list[Entry]:
    """One recording's entries, oldest first: what a recording's page shows."""
    if _channel_column(db):
        return rows_as(
            Entry,
            db,
            "SELECT time, action, actor, channel, details FROM custody_log "
            "WHERE recording_id = ? ORDER BY id",
            (recording_id,),
        )
    return rows_as(
        Entry,
        db,
        "SELECT time, action, actor, NULL AS channel, details FROM "
        "custody_log WHERE recording_id = ? ORDER BY id",
        (recording_id,),
    )


def head(db: Database) -> tuple[int, str]:
    """The chain's head: (the last entry's sequence number, its hash); (0, GENESIS) if empty.
    It leaves the station with events and onto both drives, so a chain cut short or rewritten
    here is found by comparing (``verify_heads``)."""
    last = one(db, "SELECT id, hash FROM custody_log ORDER BY id DESC LIMIT 1")
    return (int(last["id"]), str(last["hash"])) if last else (0, GENESIS)


def _said(db: Database) -> Iterator[tuple[int, dict[str, Any]]]:
    """What the chain says of each recording (by id, ascending): the hash, size and path of
    its 'store' entry, the path of its last 'attribute' entry; one recording at a time, from
    the custody log's recording index (issue 29: not a year of them in memory)."""
    current: int | None = None
    known: dict[str, Any] = {}
    for e in each(
        db,
        "SELECT recording_id, action, details FROM custody_log WHERE action IN "
        "('store', 'attribute') AND recording_id IS NOT NULL ORDER BY recording_id, id",
    ):
        if e["recording_id"] != current:
            if current is not None:
                yield current, known
            current, known = e["recording_id"], {}
        d = json.loads(e["details"])
        if e["action"] == "store":
            known.setdefault("sha256", d.get("sha256"))
            known.setdefault("size", d.get("size"))
            known.setdefault("path", d.get("path"))
        else:
            known["path"] = d.get("new_path")
    if current is not None:
        yield current, known


def _rows_match_entries(db: Database) -> list[str]:
    """The recordings and copies tables against the chain (invariant 6): each recording's hash
    and size are what its 'store' entry says, its path the last one the chain gave it, its
    copies' hashes its own. An edit outside the sanctioned paths shows here. Both sides in
    recording order, merged (flat memory)."""
    said = _said(db)
    upto = next(said, None)
    problems = []
    for r in each(db, "SELECT id, sha256, size, relpath FROM recordings ORDER BY id"):
        while upto is not None and upto[0] < r["id"]:
            upto = next(said, None)
        if upto is None or upto[0] != r["id"]:
            continue  # reported above as having no 'store' entry
        entry = upto[1]
        for key, col in (("sha256", "sha256"), ("size", "size"), ("path", "relpath")):
            if entry.get(key) is not None and entry[key] != r[col]:
                problems.append(
                    f"recording {r['id']}: {col} is {r[col]!r} in the catalog, "
                    f"{entry[key]!r} in the custody log (changed outside camdock)"
                )
    for c in rows(
        db,
        "SELECT c.recording_id, c.destination, c.sha256 AS copy, r.sha256 FROM "
        "copies c JOIN recordings r ON r.id = c.recording_id WHERE c.sha256 != "
        "r.sha256",
    ):
        problems.append(
            f"recording {c['recording_id']}: its copy on {c['destination']} is "
            f"catalogued with another hash ({c['copy']})"
        )
    return problems


def verify_heads(db: Database, heads: list[tuple[int, str]], source: str) -> list[str]:
    """The chain here against heads seen elsewhere (a drive's heads file, the server's
    witness): every head seen must still be an entry with that hash. Reports the first that
    is not, and where the chain then differs from."""
    last, _ = head(db)
    good = 0
    for seq, digest in sorted(set(heads)):
        if seq == 0:
            continue
        here = one(db, "SELECT hash FROM custody_log WHERE id = ?", (seq,))
        if here is None:
            return [
                f"{source}: saw entry {seq} ({digest[:12]}…); the chain here ends at entry "
                f"{last}: cut short after entry {max(good, last)}"
            ]
        if here["hash"] != digest:
            return [
                f"{source}: entry {seq} was {digest[:12]}… when seen and is "
                f"{here['hash'][:12]}… here: the chain was rewritten, first differing entry "
                f"after {good} and at most {seq}"
            ]
        good = seq
    return []


@dataclass(frozen=True)
class KeyCheck:
    """How many entries carry a MAC under the chain key, how many are from before it, and
    whether the MACs were checked (only with the key)."""

    keyed: int
    unkeyed: int
    checked: bool


def verify_keys(db: Database, key: bytes | None) -> tuple[list[str], KeyCheck]:
    """Every entry's MAC under the station's chain key (catalog/chainkey): the problems (a MAC
    that fails; an entry without one after the chain became keyed) and the counts. Entries from
    before the first keyed one are unkeyed, not failed. Without the key only the latter is
    checked."""
    problems: list[str] = []
    first_keyed: int | None = None
    unkeyed = keyed = 0
    for r in each(db, "SELECT * FROM custody_log ORDER BY id"):
        if r["mac"] is None:
            if first_keyed is None:
                unkeyed += 1
            else:
                problems.append(
                    f"entry {r['id']} ({r['action']} by {r['actor']}): no MAC, though "
                    f"the chain is keyed from entry {first_keyed} on (appended "
                    "without the station's chain key)"
                )
            continue
        keyed += 1
        first_keyed = first_keyed or int(r["id"])
        if key is None:
            continue
        entry = _entry_of(r)
        if not hmac.compare_digest(chainkey.mac(key, _message(r["prev_hash"], entry)), r["mac"]):
            problems.append(
                f"entry {r['id']} ({r['action']} by {r['actor']}): its MAC fails under "
                "the station's chain key (not written by camdock: forged)"
            )
    return problems, KeyCheck(keyed, unkeyed, key is not None)
