"""The catalog's schema (Annex 1, REG-4.1.2; the outbox, REG-7.1; REG-3.2's records), as
migrations from day one. A declarative table: long on purpose, read top to bottom.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

__all__ = ["migrations"]

migrations = Migrations("camdock")


# Declarative, long on purpose: the Annex 1 tables read top to bottom as one schema.
@migrations()
def m001_catalog(db: Database) -> None:
    """Annex 1: recordings, their copies, offload sessions and the per-file journal."""
    db.table("offload_sessions").create(
        {
            "id": int,
            "uid": str,
            "camera_id": str,
            "officer_name": str,
            "officer_badge": str,
            "unit": str,
            "source": str,
            "destinations": str,  # JSON list of destination roots
            "clear_requested": int,
            "started_at": str,
            "ended_at": str,
            "status": str,  # running | completed | failed | interrupted
            "files_total": int,
            "files_verified": int,
            "files_failed": int,
            "files_cleared": int,
            "bytes_verified": int,
            "host": str,
        },
        pk="id",
        not_null={"uid", "camera_id", "started_at", "status"},
    )
    db.table("offload_sessions").create_index(["uid"], unique=True)

    # Annex 1: one row per recording.
    db.table("recordings").create(
        {
            "id": int,
            "sha256": str,
            "size": int,
            "camera_id": str,
            "officer_name": str,
            "officer_badge": str,
            "unit": str,
            "duty_slot": str,  # "0800-1200"
            "duty_slot_start": str,  # local ISO 8601 with offset
            "recorded_start": str,
            "recorded_end": str,
            "time_source": str,  # name | mtime
            "original_name": str,  # path on the camera, for display (odd bytes escaped)
            "original_name_raw": bytes,  # the exact bytes
            "source_mtime_ns": int,
            "relpath": str,  # YYYY/MM/DD/<name>, the same in every destination
            "offload_session_id": int,
            "ingested_at": str,
            "cleared_at": str,  # when the camera's copy was deleted (REG-4.1.2)
            # Retention (REG-4.3.1), filled in by the retention issue's policy.
            "retain_until": str,  # earliest day it may be destroyed (≥ 1 month)
            "destroy_by": str,  # latest day it must be destroyed (≤ 1 year), unless on hold
            "hold": int,
            "hold_reason": str,
            "destroyed_at": str,
            "destroyed_by": str,
        },
        pk="id",
        not_null={"sha256", "size", "camera_id", "relpath", "ingested_at"},
        defaults={"hold": 0},
        foreign_keys=[("offload_session_id", "offload_sessions", "id")],
    )
    # Same camera + same content is the same recording: never catalogued twice.
    db.table("recordings").create_index(["camera_id", "sha256"], unique=True)
    db.table("recordings").create_index(["relpath"], unique=True)

    # Where each recording is stored, and when that copy was verified by read-back.
    db.table("copies").create(
        {
            "recording_id": int,
            "destination": str,
            "relpath": str,
            "sha256": str,
            "verified_at": str,
        },
        pk=("recording_id", "destination"),
        not_null={"relpath", "sha256", "verified_at"},
        foreign_keys=[("recording_id", "recordings", "id")],
    )

    # The per-file journal of an offload session: what a re-run after a crash resumes from.
    db.table("offload_files").create(
        {
            "id": int,
            "session_id": int,
            "seq": int,
            "source_relpath": bytes,
            "source_display": str,
            "size": int,
            "mtime_ns": int,
            "temp_paths": str,  # JSON list: every temp file this entry may have created
            "state": str,  # planned | catalogued | cleared | failed | skipped | abandoned
            "sha256": str,
            "recording_id": int,
            "error": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"session_id", "seq", "state"},
        foreign_keys=[("session_id", "offload_sessions", "id")],
    )
    db.table("offload_files").create_index(["session_id", "seq"], unique=True)
    db.table("offload_files").create_index(["state"])


@migrations()
def m002_outbox(db: Database) -> None:
    # The durable outbox (REG-7.1, invariant 4): an event is written in the same transaction as
    # the state change it reports and deleted from here only after the broker acknowledged it.
    # AUTOINCREMENT: the id is the station's event sequence number and is never reused, even
    # after delivered rows are pruned.
    """The durable event outbox."""
    db.execute(
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            topic TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            delivered_at TEXT
        )"""
    )
    db.execute("CREATE INDEX outbox_undelivered ON outbox (delivered_at, id)")


@migrations()
def m003_selftest(db: Database) -> None:
    # REG-3.2: every pre-shift function test, its checks and its verdict.
    """REG-3.2: function tests, duty-log entries, loans of spares."""
    db.table("selftests").create(
        {
            "id": int,
            "time": str,
            "station": str,
            "bay": int,
            "camera_id": str,
            "usb_serial": str,
            "officer_badge": str,
            "officer_name": str,
            "passed": int,
            "checks": str,  # JSON: [{name, ok, value, reason}]
            "drift_before": float,
            "drift_after": float,
            "battery": int,
        },
        pk="id",
        not_null={"time", "passed", "checks"},
    )
    db.table("selftests").create_index(["camera_id", "time"])
    # REG-3.2: a failed test is noted in the officer's duty log (員警工作紀錄簿).
    db.table("duty_log").create(
        {
            "id": int,
            "time": str,
            "officer_badge": str,
            "officer_name": str,
            "camera_id": str,
            "entry": str,
            "spare_camera_id": str,
            "selftest_id": int,
        },
        pk="id",
        not_null={"time", "entry"},
        foreign_keys=[("selftest_id", "selftests", "id")],
    )
    # A spare lent to an officer: footage offloaded from it is filed under the borrower
    # (REG-4.2.4) until the loan is returned (the spare's next offload).
    db.table("loans").create(
        {
            "id": int,
            "time": str,
            "spare_camera_id": str,
            "officer_badge": str,
            "officer_name": str,
            "duty_slot": str,
            "returned_at": str,
        },
        pk="id",
        not_null={"time", "spare_camera_id", "officer_badge"},
    )


@migrations()
def m004_custody(db: Database) -> None:
    # REG-7.1: the hash-chained custody log (catalog/custody.py). No UPDATE or DELETE is ever
    # issued on it; triggers make an accidental one fail loudly instead of silently.
    """REG-7.1: the append-only, hash-chained custody log."""
    db.execute(
        """CREATE TABLE custody_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            time TEXT NOT NULL,
            action TEXT NOT NULL,
            recording_id INTEGER,
            actor TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX custody_recording ON custody_log (recording_id)")
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER custody_no_{op.lower()} BEFORE {op} ON custody_log "
            "BEGIN SELECT RAISE(ABORT, 'the custody log is append-only'); END"
        )


@migrations()
def m005_attribution(db: Database) -> None:
    """Who had which camera when (REG-4.2.4), suspect camera clocks, and re-filing."""
    # Each roster's assignments from its duty day on; a corrected roster for the same day
    # replaces that day's row. The station's config is the baseline (not stored here).
    db.table("assignments").create(
        {
            "id": int,
            "camera_id": str,
            "valid_from": str,  # YYYY-MM-DD: the duty day the roster is for
            "officer_badge": str,
            "officer_name": str,
            "unit": str,
            "received_at": str,
        },
        pk="id",
        not_null={"camera_id", "valid_from", "officer_badge", "officer_name", "received_at"},
    )
    db.table("assignments").create_index(["camera_id", "valid_from"], unique=True)
    recordings = db.table("recordings")
    recordings.add_column("attribution", str)  # core/attribution.Source
    recordings.add_column("time_suspect", int, not_null_default=0)  # the camera's clock lied
    recordings.add_column("time_note", str)  # why the time is suspect
    recordings.add_column("camera_drift", float)  # the last drift the pre-shift test measured
    # Re-filing a recording under another name (camdock attribute): planned before any link,
    # done once the catalog points at the new name and the old names are gone.
    db.table("refiles").create(
        {
            "id": int,
            "recording_id": int,
            "old_relpath": str,
            "new_relpath": str,
            "state": str,  # planned | done
            "time": str,
        },
        pk="id",
        not_null={"recording_id", "old_relpath", "new_relpath", "state", "time"},
        foreign_keys=[("recording_id", "recordings", "id")],
    )


@migrations()
def m006_source_index(db: Database) -> None:
    """Finding the recording a camera file already is (by camera and original name) must not
    scan the catalog: a year of a busy station holds hundreds of thousands of recordings."""
    db.table("recordings").create_index(["camera_id", "original_name_raw"])


@migrations()
def m007_retention(db: Database) -> None:
    """REG-4.3.1: holds, the destruction journal, and the indexes the daily pass reads."""
    db.table("holds").create(
        {
            "id": int,
            "kind": str,  # core/retention.HoldKind
            "case_ref": str,  # the case or reference number
            "reason": str,
            # The scope: one recording, or an officer's and/or camera's footage over a range.
            "recording_id": int,
            "officer_badge": str,
            "camera_id": str,
            "range_start": str,  # ISO 8601 with offset
            "range_end": str,
            "review_by": str,  # YYYY-MM-DD: past it, an alarm
            "placed_by": str,
            "placed_at": str,
            "released_by": str,
            "released_at": str,
            "release_reason": str,
        },
        pk="id",
        not_null={"kind", "case_ref", "reason", "placed_by", "placed_at"},
        foreign_keys=[("recording_id", "recordings", "id")],
    )
    # Destroying a recording: planned (with who and why) before the first copy is removed, done
    # once the catalog's tombstone, the custody entry and the event are committed. A crash in
    # between leaves a planned row that the next pass finishes.
    db.table("destructions").create(
        {
            "id": int,
            "recording_id": int,
            "state": str,  # planned | done | abandoned
            "actor": str,
            "authority": str,  # manual | standing
            "reason": str,
            "planned_at": str,
            "done_at": str,
        },
        pk="id",
        not_null={"recording_id", "state", "actor", "authority", "reason", "planned_at"},
        foreign_keys=[("recording_id", "recordings", "id")],
    )
    db.table("destructions").create_index(["state"])
    db.table("recordings").add_column("destroy_reason", str)
    # The daily pass reads only live recordings, by date: partial indexes keep it off the
    # tombstones and off a full scan (bench/retention_bench.py: 200k recordings).
    db.execute("CREATE INDEX recordings_live_due ON recordings (destroy_by) "
               "WHERE destroyed_at IS NULL")  # fmt: skip
    db.execute("CREATE INDEX recordings_live_min ON recordings (retain_until) "
               "WHERE destroyed_at IS NULL")  # fmt: skip


@migrations()
def m008_seals(db: Database) -> None:
    """REG-4.2.5: each duty day's encrypted archives, and which days need (re)sealing."""
    # One row per archive: a day's generation on one destination. writing → verified (→
    # superseded by the next generation, whose archive replaces it), or abandoned.
    db.table("seals").create(
        {
            "id": int,
            "day": str,  # YYYY-MM-DD, the duty day (the folder's date)
            "generation": int,
            "destination": str,
            "path": str,  # relative to the destination: YYYY/MM/YYYYMMDD-<generation>.7z
            "temp_path": str,
            "state": str,  # writing | verified | superseded | abandoned
            "sha256": str,  # of the archive as it is on disk
            "size": int,
            "members": str,  # JSON: [[recording id, name, sha256, size], ...]
            "key_id": str,
            "sealed_by": str,
            "started_at": str,
            "sealed_at": str,
            "confirmed_by": str,
            "confirmed_at": str,
            "removed_at": str,  # a superseded archive's file is gone
        },
        pk="id",
        not_null={"day", "generation", "destination", "path", "state", "started_at"},
    )
    db.table("seals").create_index(["day", "generation", "destination"], unique=True)
    db.table("seals").create_index(["state"])
    # A day whose recordings changed since its seal (or were never sealed): a counter, so that a
    # seal started before a change does not clear it. Kept by triggers, so no write path can
    # forget it: a new recording, a re-filing, a destruction.
    db.execute("CREATE TABLE seal_dirty (day TEXT PRIMARY KEY, changes INTEGER NOT NULL)")
    day = "replace(substr({}.relpath, 1, 10), '/', '-')"
    upsert = ("INSERT INTO seal_dirty (day, changes) VALUES ({}, 1) "
              "ON CONFLICT (day) DO UPDATE SET changes = changes + 1;")  # fmt: skip
    db.execute(f"CREATE TRIGGER seal_dirty_insert AFTER INSERT ON recordings BEGIN "
               f"{upsert.format(day.format('NEW'))} END")  # fmt: skip
    db.execute(f"CREATE TRIGGER seal_dirty_update AFTER UPDATE OF relpath, destroyed_at "
               f"ON recordings BEGIN {upsert.format(day.format('OLD'))} "
               f"{upsert.format(day.format('NEW'))} END")  # fmt: skip
    db.execute("INSERT INTO seal_dirty (day, changes) SELECT DISTINCT "
               "replace(substr(relpath, 1, 10), '/', '-'), 1 FROM recordings "
               "WHERE destroyed_at IS NULL")  # fmt: skip


@migrations()
def m009_plain_removed(db: Database) -> None:
    """REG-4.2.5: a copy whose plain file was removed after its day was sealed and confirmed
    lives on in that drive's archive only."""
    db.table("copies").add_column("plain_removed_at", str)


@migrations()
def m010_requests(db: Database) -> None:
    """REG-5, Annexes 2 and 3: access/copy requests, what each covers, and the register."""
    db.table("requests").create(
        {
            "id": int,
            "number": str,  # YYYY-NNNN
            "state": str,  # core/access.State
            "created_by": str,  # staff id
            "created_at": str,
            # Annex 2, field by field
            "unit_full_name": str,
            "applicant_id": str,
            "applicant_unit": str,
            "applicant_title": str,
            "applicant_name": str,
            "recorded_by": str,  # (1) the officer who recorded (badge)
            "duty_item": str,  # (2) duty item …
            "range_start": str,  # … and date/time slot (the selection's range)
            "range_end": str,
            "camera_id": str,
            "kind": str,  # (3)/(4) view | copy | both
            "reason": str,
            "purpose": str,  # core/access.Purpose
            "viewing_at": str,  # the viewing date and time asked for
            "unit_supervisor": str,
            "pr_consulted_by": str,
            "pr_consulted_at": str,
            "approved_by": str,
            "approved_at": str,
            "approved_until": str,
            "denied_by": str,
            "denied_reason": str,
            "handling_review": str,
            "scheduled_by": str,
            "window_start": str,
            "window_end": str,
            "acknowledged_by": str,
            "acknowledged_at": str,
            "closed_at": str,
        },
        pk="id",
        not_null={"number", "state", "created_by", "created_at", "kind", "purpose", "reason"},
    )
    db.table("requests").create_index(["number"], unique=True)
    db.table("request_recordings").create(
        {"request_id": int, "recording_id": int},
        pk=("request_id", "recording_id"),
        foreign_keys=[("request_id", "requests", "id"), ("recording_id", "recordings", "id")],
    )
    # Annex 3: one line per approved access or copy actually made.
    db.table("register").create(
        {
            "id": int,
            "request_id": int,
            "time": str,
            "kind": str,  # view | copy
            "recordings": str,  # JSON list of catalog ids
            "custodian": str,  # who supervised or made the copy
            "medium": str,  # the copy's medium (its label or path)
            "manifest_sha256": str,
            "remarks": str,
        },
        pk="id",
        not_null={"request_id", "time", "kind", "recordings", "custodian"},
        foreign_keys=[("request_id", "requests", "id")],
    )
