"""The catalog's schema from m011 on: the scrub's proofs, search indexes, the roster's roles,
and issue 26's trust (rows chained with the custody log, freezes, owned re-filings). The first
ten migrations are in ``schema``; this module adds to the same sequence, in order, and is what
the catalog opens with.
"""

from __future__ import annotations

from sqlite_utils import Database

from camdock.catalog.schema import migrations

__all__ = ["migrations"]


@migrations()
def m011_scrub(db: Database) -> None:
    """REG-7.2: when each copy was last proven by reading it back (the background scrub)."""
    db.table("copies").add_column("proven_at", str)
    db.execute("UPDATE copies SET proven_at = verified_at")
    db.execute("CREATE INDEX copies_proven ON copies (proven_at)")


@migrations()
def m012_search(db: Database) -> None:
    """The console's catalog search by officer or camera, newest first, without a scan."""
    db.execute("CREATE INDEX recordings_officer ON recordings (officer_badge, id)")
    db.execute("CREATE INDEX recordings_camera ON recordings (camera_id, id)")


@migrations()
def m013_roster_roles(db: Database) -> None:
    """Roles the server's latest roster granted (REG-4.1.1), so commands check them too."""
    db.table("roster_roles").create(
        {
            "badge": str,
            "name": str,
            "unit": str,
            "roles": str,
            "duty_day": str,
            "received_at": str,
        },
        pk="badge",
        not_null={"name", "roles", "duty_day", "received_at"},
    )


@migrations()
def m014_rows_chained(db: Database) -> None:
    """Issue 26: each custody entry carries the state of the rows its change left
    (catalog/rowchain); the rows as they are now start the chain's account of them."""
    from camdock.catalog import custody  # at run time: custody's module needs this one loaded

    db.execute("ALTER TABLE custody_log ADD COLUMN rows TEXT")
    # Where each row's last chained state is: an accelerator, never trusted over the chain.
    db.execute("CREATE TABLE chained_rows (tbl TEXT NOT NULL, k TEXT NOT NULL, "
               "entry_id INTEGER NOT NULL, PRIMARY KEY (tbl, k))")  # fmt: skip
    custody.baseline(db)


@migrations()
def m015_freezes(db: Database) -> None:
    """Issue 26: recordings the catalog and the custody chain disagree about, frozen until an
    auditor resolves them (catalog/freezes)."""
    db.table("freezes").create(
        {
            "id": int,
            "recording_id": int,
            "reason": str,
            "found_at": str,
            "resolved_by": str,
            "resolved_at": str,
            "resolution": str,
        },
        pk="id",
        not_null={"recording_id", "reason", "found_at"},
        foreign_keys=[("recording_id", "recordings", "id")],
    )


@migrations()
def m016_refile_owner(db: Database) -> None:
    """A re-filing is owned (issue 26): recovery finishes only one whose process is gone. The
    owner is the boot, the pid and the process's start time (pid reuse is not the owner); a row
    from before has none and counts as a dead process's. At most one pending re-filing per
    recording, and a pending one reserves its new name."""
    refiles = db.table("refiles")
    refiles.add_column("owner_boot", str)
    refiles.add_column("owner_pid", int)
    refiles.add_column("owner_start", int)
    refiles.add_column("actor", str)  # who decided it: named to the second custodian
    # Rows from before have no owner and may (rarely) repeat a recording: the indexes cover
    # owned rows only, and planning checks every pending row in its transaction anyway.
    for column in ("recording_id", "new_relpath"):
        db.execute(
            f"CREATE UNIQUE INDEX refiles_pending_{column} ON refiles ({column}) "
            "WHERE state IN ('planned', 'linked') AND owner_pid IS NOT NULL"
        )


@migrations()
def m017_chain_mac(db: Database) -> None:
    """Issue 26: each custody entry also carries an HMAC under the station's chain key, which
    is never in the catalog (catalog/chainkey); entries from before have none (unkeyed)."""
    db.execute("ALTER TABLE custody_log ADD COLUMN mac TEXT")


@migrations()
def m017_staff(db: Database) -> None:
    """Issue 27: the station's staff, their roles and console password hashes live in the
    catalog (imported from the config, every change a custody entry: catalog/staff), so every
    path applies the same rules. A person taken off the staff is marked inactive, never deleted.
    The hash itself is left out of the chain (it would put it in the log); its SHA-256 is in."""
    db.table("staff").create(
        {
            "id": str,
            "name": str,
            "title": str,
            "unit": str,
            "roles": str,  # a JSON list, sorted
            "password_hash": str,
            "password_sha": str,
            "active": int,
        },
        pk="id",
        not_null={"name", "roles", "active"},
    )
    # A roster's grant lasts the duty day it names (issue 27, item 7): from and until, UTC.
    roster = db.table("roster_roles")
    roster.add_column("valid_from", str)
    roster.add_column("valid_until", str)


@migrations()
def m018_totp(db: Database) -> None:
    """Issue 27: the second factor (RFC 6238) of approvers, supervisors and auditors. The
    secret is left out of the chain (its SHA-256 is in), and so is the last time step used (a
    login is not a custody event); recovery codes are kept hashed, each usable once."""
    db.table("staff_totp").create(
        {"staff_id": str, "secret": str, "secret_sha": str, "enrolled_at": str, "last_step": int},
        pk="staff_id",
        not_null={"secret", "secret_sha", "enrolled_at"},
        foreign_keys=[("staff_id", "staff", "id")],
    )
    db.table("staff_recovery").create(
        {"id": int, "staff_id": str, "code_sha": str, "made_at": str, "used_at": str},
        pk="id",
        not_null={"staff_id", "code_sha", "made_at"},
        foreign_keys=[("staff_id", "staff", "id")],
    )
    db.execute("CREATE INDEX staff_recovery_staff ON staff_recovery (staff_id, code_sha)")


@migrations()
def m019_destruction_lists(db: Database) -> None:
    """Issue 27: destruction only with approval (REG-4.3.1, REG-7.1). A custodian proposes a
    list of due recordings, an approver (someone else) approves it, and only an approved list
    is executed; a standing authorisation is an approver's record too (reference, scope,
    expiry), and the daemon destroys by itself only under a live one."""
    db.table("destruction_lists").create(
        {
            "id": int,
            "state": str,  # proposed | approved | executing | executed
            "reason": str,
            "proposed_by": str,
            "proposed_by_id": str,  # staff id: duties are separated by identity
            "proposed_at": str,
            "approved_by": str,
            "approved_by_id": str,
            "approved_at": str,
            "executed_by": str,
            "executed_by_id": str,
            "executed_at": str,
            "done_at": str,
        },
        pk="id",
        not_null={"state", "reason", "proposed_by", "proposed_by_id", "proposed_at"},
    )
    db.table("destruction_list_items").create(
        {"list_id": int, "recording_id": int, "outcome": str},
        pk=("list_id", "recording_id"),
        foreign_keys=[("list_id", "destruction_lists", "id"), ("recording_id", "recordings", "id")],
    )
    db.table("standing_authorisations").create(
        {
            "id": int,
            "ref": str,  # the written authorisation's reference number
            "scope": str,  # "due": recordings past their destruction date, not held
            "custodian": str,  # under whose name the daemon's destructions are recorded
            "approved_by": str,
            "approved_by_id": str,
            "approved_at": str,
            "expires": str,  # the last day it is in force (station's zone)
            "revoked_at": str,
        },
        pk="id",
        not_null={
            "ref",
            "scope",
            "custodian",
            "approved_by",
            "approved_by_id",
            "approved_at",
            "expires",
        },
    )


@migrations()
def m020_register_viewings_identity(db: Database) -> None:
    """Issue 27: the register (紀錄清冊, REG-7.1) also records keeping and destruction; each
    streamed viewing is logged when it opens and closes (the report compares the two); who
    approved a request and who sealed a day are kept by staff id, never by a name string."""
    db.table("register_acts").create(
        {
            "id": int,
            "time": str,
            "kind": str,  # keep | destroy
            "recordings": str,  # JSON list of catalog ids
            "actor": str,
            "actor_id": str,
            "authority": str,  # the approved destruction list or standing authorisation
            "remarks": str,
        },
        pk="id",
        not_null={"time", "kind", "recordings", "actor"},
    )
    db.execute("CREATE INDEX register_acts_time ON register_acts (time)")
    db.table("viewings").create(
        {
            "id": int,
            "request_id": int,
            "recording_id": int,
            "viewer": str,
            "viewer_id": str,
            "started_at": str,
            "ended_at": str,
            "bytes": int,
        },
        pk="id",
        not_null={"request_id", "recording_id", "viewer", "viewer_id", "started_at"},
        foreign_keys=[("request_id", "requests", "id"), ("recording_id", "recordings", "id")],
    )
    db.execute("CREATE INDEX viewings_started ON viewings (started_at)")
    db.table("register").add_column("viewing_id", int)  # the streamed viewing a line records
    db.table("requests").add_column("approved_by_id", str)
    db.table("seals").add_column("sealed_by_id", str)


@migrations()
def m021_channel(db: Database) -> None:
    """Issue 27: each custody entry names the channel its act came through (console, cli,
    daemon) and hashes it with the rest; entries from before keep none and verify as before."""
    db.execute("ALTER TABLE custody_log ADD COLUMN channel TEXT")


@migrations()
def m022_destroying(db: Database) -> None:
    """Issue 28: a recording being destroyed (its destruction ``planned``: the state
    "destroying") that stopped part-way says why: the drive whose copy could not be removed
    and its error, or the hold placed since, with when. Cleared when a run takes it up."""
    for column in ("stopped_reason", "stopped_drive", "stopped_at"):
        db.execute(f"ALTER TABLE destructions ADD COLUMN {column} TEXT")


@migrations()
def m023_console_search(db: Database) -> None:
    """Issue 29: the console's searches and home view on a year's catalog answer from indexes
    (catalog/search.py): recordings by time, name and camera in time order; the custody log by
    person, action and time (the audit report's period counts too); the day's tests, offloads
    and duty-log entries; requests by state; tombstones by when."""
    # IF NOT EXISTS: a catalog that ran this under another number (the lead renumbers parallel
    # migrations) is not broken by running it again.
    for name, table, columns in (
        ("recordings_recorded", "recordings", "recorded_start, id"),
        ("recordings_name", "recordings", "officer_name, recorded_start, id"),
        ("recordings_camera_time", "recordings", "camera_id, recorded_start, id"),
        ("recordings_badge_time", "recordings", "officer_badge, recorded_start, id"),
        ("recordings_destroyed", "recordings", "destroyed_at"),
        ("custody_actor", "custody_log", "actor, id"),
        ("custody_action", "custody_log", "action, id"),
        ("custody_time", "custody_log", "time"),
        # The audit report's period counts (catalog/report.py): by action over a period.
        ("custody_action_time", "custody_log", "action, time"),
        ("selftests_time", "selftests", "time"),
        ("duty_log_time", "duty_log", "time"),
        ("offload_sessions_started", "offload_sessions", "started_at"),
        ("requests_state", "requests", "state"),
    ):
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})")


@migrations()
def m024_authorisation_revoked(db: Database) -> None:
    """Issue 27, gap 3: a standing authorisation revoked says by whom (label and staff id) as
    well as when (``revoked_at``), so a second revocation is told who was first."""
    # Guarded: a catalog that ran this under another number (the lead renumbers parallel
    # migrations) is not broken by running it again.
    have = db.table("standing_authorisations").columns_dict
    for column in ("revoked_by", "revoked_by_id"):
        if column not in have:
            db.execute(f"ALTER TABLE standing_authorisations ADD COLUMN {column} TEXT")
