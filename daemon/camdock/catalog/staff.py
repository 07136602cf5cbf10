"""Who may act at this station (REG-4.1.1; issue 27): the staff, their roles, their console
password hashes and second factors, and the roster's grants in force, as the catalog keeps them.

The config's ``[[staff]]`` and ``[[officers]]`` are imported by ``sync`` (when the daemon
builds its control side, or ``camdock staff sync``): every change — a person added, a role
added or removed, a password hash changed, a person taken off (marked inactive, never deleted)
— is one custody entry naming what changed; nothing changed, no entry. Rows come out as typed
frozen values (``Staff``), never as dicts.

Secrets never enter the custody log: the chain carries the SHA-256 of a password hash and of a
TOTP secret (catalog/rowchain leaves the columns themselves out), and a value whose digest no
longer matches is not used (an edit behind camdock's back, which ``audit`` names).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from camdock.catalog import custody
from camdock.catalog.custody import Action
from camdock.catalog.db import one, rows, write_txn
from camdock.clock import iso_utc, utcnow
from camdock.core.access import Person, Role

__all__ = [
    "Staff",
    "Totp",
    "active_ids",
    "enrol_totp",
    "get",
    "has_roles",
    "person",
    "recovery_left",
    "require_trusted",
    "sha",
    "sync",
    "totp_of",
    "use_recovery",
    "use_step",
]


def _code(text: str) -> str:
    """A recovery code as stored: without spaces or dashes, in capitals."""
    return "".join(text.replace("-", "").split()).upper()


def sha(text: str) -> str:
    """The SHA-256 of ``text`` (hex): how the chain names a secret without holding it."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Staff:
    """One person on the station's staff as the catalog keeps them."""

    id: str
    name: str
    title: str
    unit: str
    roles: frozenset[Role]
    password_hash: str | None  # None: no console login (or its digest no longer matches)
    password_sha: str | None  # what sessions compare to notice a password change
    active: bool

    @property
    def person(self) -> Person:
        """The person as the access rules take them (config roles only)."""
        return Person(self.id, self.name, self.roles, self.title, self.unit)


@dataclass(frozen=True)
class Totp:
    """A person's enrolled second factor (RFC 6238): the secret and the last time step used."""

    staff_id: str
    secret: str
    last_step: int


def _staff(r: Mapping[str, object]) -> Staff:
    stored, digest = r["password_hash"], r["password_sha"]
    ok = (
        isinstance(stored, str)
        and isinstance(digest, str)
        and hmac.compare_digest(sha(stored), digest)
    )
    return Staff(
        str(r["id"]),
        str(r["name"]),
        str(r["title"] or ""),
        str(r["unit"] or ""),
        frozenset(Role(x) for x in json.loads(str(r["roles"])) if x in set(Role)),
        str(stored) if ok else None,
        str(digest) if ok else None,
        bool(r["active"]),
    )


def get(db: Database, staff_id: str) -> Staff | None:
    """The person with this staff id (active or not), or None."""
    found = one(db, "SELECT * FROM staff WHERE id = ?", (staff_id,))
    return None if found is None else _staff(found)


def _table(db: Database) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE name = 'staff'").fetchone() is not None


def has_roles(db: Database) -> bool:
    """Whether the catalog has staff beyond officers: then every action is checked against
    the catalog's staff (the same rules for ``--config`` and a bare ``--catalog``)."""
    if not _table(db):
        return False
    return any(
        set(json.loads(r["roles"])) - {Role.OFFICER.value}
        for r in rows(db, "SELECT roles FROM staff WHERE active = 1")
    )


def active_ids(db: Database) -> frozenset[str]:
    """The ids of everyone on the staff now."""
    if not _table(db):
        return frozenset()
    return frozenset(r["id"] for r in rows(db, "SELECT id FROM staff WHERE active = 1"))


def require_trusted(db: Database, staff_id: str) -> None:
    """Refuse (``rowchain.Tampered``) when this person's staff row, second factor or roster
    grant is not what the custody chain last gave it: an edit in sqlite3 never makes anyone
    an approver, changes a password or a secret (issue 27, review)."""
    from camdock.catalog import rowchain  # at run time: rowchain reads through this package

    wanted: list[tuple[str, list[Any]]] = [("staff", [staff_id])]
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'staff_totp'").fetchone():
        wanted.append(("staff_totp", [staff_id]))
    wanted.append(("roster_roles", [staff_id]))
    rowchain.require_rows(db, wanted)


def person(db: Database, staff_id: str, now: datetime) -> Person | None:
    """The active staff member ``staff_id`` with the roles the roster grants them for the duty
    day ``now`` is in (REG-4.1.1; a grant lasts that day only), or None."""
    found = get(db, staff_id)
    if found is None or not found.active:
        return None
    me = found.person
    grant = one(
        db,
        "SELECT roles FROM roster_roles WHERE badge = ? AND valid_from <= ? AND ? < valid_until",
        (staff_id, iso_utc(now), iso_utc(now)),
    )
    if grant is None:
        return me
    extra = frozenset(Role(r) for r in json.loads(grant["roles"]) if r in set(Role))
    return Person(me.id, me.name, me.roles | extra, me.title, me.unit)


def _roles_json(roles: frozenset[Role]) -> str:
    return json.dumps(sorted(r.value for r in roles))


def sync(
    db: Database, people: Mapping[str, Person], hashes: Mapping[str, str], actor: str = "camdock"
) -> list[dict[str, object]]:
    """Make the catalog's staff what the config says, one custody entry per change (in one
    transaction); answers the changes (empty: nothing changed, nothing written)."""
    changes: list[dict[str, object]] = []

    def entry(details: dict[str, object]) -> None:
        custody.append(db, Action.STAFF, None, actor, details)
        changes.append(details)

    with write_txn(db):
        known = {r["id"]: r for r in rows(db, "SELECT * FROM staff")}
        for sid in sorted(people):
            p, pw = people[sid], hashes.get(sid)
            row = {
                "id": sid,
                "name": p.name,
                "title": p.title,
                "unit": p.unit,
                "roles": _roles_json(p.roles),
                "password_hash": pw,
                "password_sha": sha(pw) if pw else None,
                "active": 1,
            }
            was = known.get(sid)
            if was is None:
                db.table("staff").insert(row)
                entry(
                    {
                        "staff": sid,
                        "change": "added",
                        "roles": sorted(r.value for r in p.roles),
                        "console": pw is not None,
                    }
                )
                continue
            if not was["active"]:
                db.execute("UPDATE staff SET active = 1 WHERE id = ?", (sid,))
                entry({"staff": sid, "change": "active again"})
            before = {Role(r) for r in json.loads(was["roles"]) if r in set(Role)}
            for role in sorted(p.roles - before):
                before.add(role)
                db.execute(
                    "UPDATE staff SET roles = ? WHERE id = ?", (_roles_json(frozenset(before)), sid)
                )
                entry({"staff": sid, "change": "role added", "role": role.value})
            for role in sorted(before - p.roles):
                before.discard(role)
                db.execute(
                    "UPDATE staff SET roles = ? WHERE id = ?", (_roles_json(frozenset(before)), sid)
                )
                entry({"staff": sid, "change": "role removed", "role": role.value})
            if was["password_sha"] != row["password_sha"] or (
                pw is not None and was["password_hash"] != pw
            ):
                db.execute(
                    "UPDATE staff SET password_hash = ?, password_sha = ? WHERE id = ?",
                    (pw, row["password_sha"], sid),
                )
                entry({"staff": sid, "change": "password" if pw else "password removed"})
            named = {k: row[k] for k in ("name", "title", "unit")}
            if named != {k: was[k] or "" for k in named}:
                db.execute(
                    "UPDATE staff SET name = ?, title = ?, unit = ? WHERE id = ?",
                    (p.name, p.title, p.unit, sid),
                )
                entry({"staff": sid, "change": "name", **named})
        for sid in sorted(set(known) - set(people)):
            if known[sid]["active"]:
                db.execute("UPDATE staff SET active = 0 WHERE id = ?", (sid,))
                entry({"staff": sid, "change": "inactive"})
    return changes


def totp_of(db: Database, staff_id: str) -> Totp | None:
    """The enrolled second factor of ``staff_id`` (None: not enrolled, or its secret no longer
    matches its chained digest)."""
    found = one(db, "SELECT * FROM staff_totp WHERE staff_id = ?", (staff_id,))
    if found is None or not hmac.compare_digest(sha(found["secret"]), found["secret_sha"]):
        return None
    return Totp(staff_id, str(found["secret"]), int(found["last_step"] or 0))


def enrol_totp(db: Database, staff_id: str, secret: str, codes: list[str], actor: str) -> None:
    """Enrol (or re-enrol) ``staff_id``'s second factor with fresh recovery codes (the old ones
    are spent): one custody entry, without the secret or the codes."""
    now = utcnow()
    with write_txn(db):
        db.execute("DELETE FROM staff_totp WHERE staff_id = ?", (staff_id,))
        db.table("staff_totp").insert(
            {
                "staff_id": staff_id,
                "secret": secret,
                "secret_sha": sha(secret),
                "enrolled_at": now,
                "last_step": 0,
            }
        )
        db.execute(
            "UPDATE staff_recovery SET used_at = ? WHERE staff_id = ? AND used_at IS NULL",
            (now, staff_id),
        )
        for code in codes:
            db.table("staff_recovery").insert(
                {"staff_id": staff_id, "code_sha": sha(_code(code)), "made_at": now}
            )
        custody.append(
            db,
            Action.STAFF,
            None,
            actor,
            {"staff": staff_id, "change": "second factor enrolled", "recovery_codes": len(codes)},
        )


def use_step(db: Database, staff_id: str, step: int) -> bool:
    """Take the TOTP time step ``step`` for a login: False when it (or a later one) was used
    already (a code is not replayed within its window). Not a custody event."""
    with write_txn(db):
        done = db.execute(
            "UPDATE staff_totp SET last_step = ? WHERE staff_id = ? AND coalesce(last_step, 0) < ?",
            (step, staff_id, step),
        )
        return done.rowcount == 1


def use_recovery(db: Database, staff_id: str, code: str, actor: str) -> bool:
    """Spend one recovery code (recorded); False when it is not one of theirs or was used."""
    with write_txn(db):
        found = one(
            db,
            "SELECT id FROM staff_recovery WHERE staff_id = ? AND code_sha = ? AND used_at IS NULL",
            (staff_id, sha(_code(code))),
        )
        if found is None:
            return False
        db.execute("UPDATE staff_recovery SET used_at = ? WHERE id = ?", (utcnow(), found["id"]))
        custody.append(
            db,
            Action.STAFF,
            None,
            actor,
            {
                "staff": staff_id,
                "change": "recovery code used",
                "left": recovery_left(db, staff_id),
            },
        )
    return True


def recovery_left(db: Database, staff_id: str) -> int:
    """How many unused recovery codes ``staff_id`` has."""
    found = db.execute(
        "SELECT count(*) FROM staff_recovery WHERE staff_id = ? AND used_at IS NULL", (staff_id,)
    ).fetchone()
    return int(found[0])
