"""``camdock hold``, ``camdock retention`` and ``camdock catalog``: holds, the retention plan,
destruction (REG-4.3.1) and the catalog's backups (REG-4.3.2), from the station's config or a
bare ``--catalog FILE``. Each action names the person (``--by``) in the custody log."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from camdock import forms, protocol
from camdock.catalog import (
    custody,
    destruction,
    holds,
    open_catalog,
    open_readonly,
    recordings,
    restored,
)
from camdock.catalog.custody import Action
from camdock.catalog.db import write_txn
from camdock.commands import remote
from camdock.commands.common import (
    Where,
    act,
    act_as,
    by_from,
    day_text,
    moment_arg,
    opened,
    output,
    text_arg,
    through_daemon,
    where_from,
)
from camdock.config import SealSettings
from camdock.core.retention import HoldKind, Plan
from camdock.errors import CamdockError, ExitCode, Refused, UsageError
from camdock.services import backup, reconcile
from camdock.services import retention as service
from camdock.services.retention import Keeping
from camdock.services.seal import Sealing, load_key, seal_day

__all__ = ["add_parsers", "run"]


def _common(p: argparse.ArgumentParser, *, by: bool = True, login: bool = True,
            password_file: bool = True) -> None:  # fmt: skip
    if by:
        p.add_argument("--by", metavar="STAFF", help="who acts (recorded in the custody log)")
        if login:
            remote.add_credentials(p, password_file=password_file)
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the station's config (default /etc/camdock/camdock.toml if there)",
    )
    p.add_argument(
        "--catalog",
        type=Path,
        metavar="FILE",
        help="a catalog without a config (destinations as it records them)",
    )
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")


# A declarative table, long on purpose: the three commands' options in one place.
def add_parsers(sub: Any) -> None:
    """The ``hold``, ``retention`` and ``catalog`` subcommands."""
    h = sub.add_parser("hold", help="place, release or list holds on footage (REG-4.3.1)")
    hs = h.add_subparsers(dest="action", required=True)
    place = hs.add_parser("place", help="keep footage past its window")
    place.add_argument(
        "--kind",
        required=True,
        choices=[k.value for k in HoldKind],
        help="investigation may keep footage past one year; the others may not",
    )
    place.add_argument("--case", type=text_arg, required=True, help="the case or reference number")
    place.add_argument("--reason", type=text_arg, required=True)
    place.add_argument("--recording", type=int, metavar="ID", help="one recording")
    place.add_argument(
        "--officer", type=text_arg, metavar="BADGE", help="an officer's footage (with a range)"
    )
    place.add_argument(
        "--camera", type=text_arg, metavar="ID", help="a camera's footage (with a range)"
    )
    place.add_argument("--from", dest="start", metavar="WHEN", help="YYYY-MM-DD[THH:MM]")
    place.add_argument("--to", dest="end", metavar="WHEN", help="YYYY-MM-DD[THH:MM] (inclusive)")
    place.add_argument("--review-by", metavar="YYYY-MM-DD", help="past it, an alarm")
    _common(place)
    rel = hs.add_parser("release", help="end a hold")
    rel.add_argument("hold", type=int, metavar="HOLD")
    rel.add_argument("--reason", type=text_arg, required=True)
    _common(rel)
    lst = hs.add_parser("list", help="the holds in force")
    lst.add_argument("--all", action="store_true", help="released holds too")
    _common(lst, by=False)

    r = sub.add_parser("retention", help="the retention plan, and destruction (REG-4.3.1)")
    rs = r.add_subparsers(dest="action", required=True)
    _common(rs.add_parser("plan", help="what is due, held, overdue today"), by=False)
    # Destruction only with approval (REG-4.3.1; issue 27): propose → approve → execute.
    propose = rs.add_parser("propose", help="a custodian proposes a destruction list")
    propose.add_argument(
        "--recording",
        type=int,
        action="append",
        metavar="ID",
        help="this recording (past its minimum, not held); repeatable; default: all due",
    )
    propose.add_argument("--reason", type=text_arg, default="retention period ended (REG-4.3.1)")
    _common(propose)
    approve = rs.add_parser("approve", help="an approver (not the proposer) approves a list")
    approve.add_argument("list", type=int, metavar="LIST")
    _common(approve)
    lists = rs.add_parser("lists", help="the destruction lists and the standing authorisations")
    _common(lists, by=False)
    for name, text in (("execute", "execute an approved destruction list"),
                       ("destroy", "the same as execute (a list is needed)")):  # fmt: skip
        destroy = rs.add_parser(name, help=text)
        destroy.add_argument("--list", type=int, metavar="LIST", help="the approved list")
        destroy.add_argument("--resume", action="store_true",
                             help="take up a list whose execution was interrupted")  # fmt: skip
        destroy.add_argument("--recording", type=int, action="append", metavar="ID",
                             help=argparse.SUPPRESS)  # refused: a list is needed  # fmt: skip
        destroy.add_argument(
            "--password-file",
            type=Path,
            metavar="FILE",
            help="on a station: your password (the daemon re-seals with the station's key); "
            "on a development catalog: the seal password (root-only file), a sealed day is "
            "re-sealed",
        )
        _common(destroy, password_file=False)
    auth = rs.add_parser("authorise", help="an approver's standing authorisation for the daemon")
    auth.add_argument("--ref", required=True, help="the written authorisation's reference number")
    auth.add_argument("--custodian", required=True, metavar="STAFF",
                      help="under whose name the daemon's destructions are recorded")  # fmt: skip
    auth.add_argument("--until", required=True, metavar="YYYY-MM-DD", help="its last day")
    _common(auth)

    c = sub.add_parser("catalog", help="back up or restore the catalog (REG-4.3.2)")
    cs = c.add_subparsers(dest="action", required=True)
    b = cs.add_parser("backup", help="back the catalog up to both drives now")
    b.add_argument("--to", type=Path, action="append", metavar="ROOT", help="this drive root")
    _common(b, by=False)
    ex = cs.add_parser("export", help="the catalog (Annex 1) for a duty day or an officer")
    ex.add_argument("--day", type=day_text, metavar="YYYY-MM-DD", help="a duty day")
    ex.add_argument(
        "--officer", type=text_arg, metavar="BADGE", help="an officer (with --from/--to)"
    )
    ex.add_argument("--from", dest="start", metavar="YYYY-MM-DD")
    ex.add_argument("--to", dest="end", metavar="YYYY-MM-DD")
    ex.add_argument("--format", choices=("csv", "json", "pdf"), default="csv")
    ex.add_argument("--out", type=Path, metavar="FILE", help="write here (PDF needs it)")
    _common(ex, by=False)
    rest = cs.add_parser("restore", help="rebuild the catalog from a drive's backup")
    rest.add_argument(
        "--from",
        dest="source",
        type=Path,
        required=True,
        metavar="ROOT",
        help="a drive root (or its camdock-catalog folder)",
    )
    rest.add_argument(
        "--replace",
        action="store_true",
        help="replace an existing catalog (kept beside it as .replaced-…)",
    )
    rest.add_argument(
        "--reconcile-only",
        action="store_true",
        help="no backup: bring what the drives' manifests and journal show into this catalog",
    )
    _common(rest)  # the daemon is stopped to restore its catalog: the config's hash proves who


def _keeping(where: Where, password_file: Path | None = None) -> Keeping:
    if where.cfg is not None:
        return Keeping.from_config(where.cfg, password_file)
    if password_file is None:
        return Keeping()
    key = load_key(SealSettings(), password_file)
    return Keeping(reseal=lambda db, day, by: seal_day(db, Sealing(key), day, by))


def run(args: argparse.Namespace) -> int:
    """Run ``hold``, ``retention`` or ``catalog`` (a CamdockError is reported by cli.main)."""
    if args.command == "catalog" and args.action == "restore":
        return _restore(args)
    where = where_from(args)
    handlers = {
        ("hold", "place"): _hold_place,
        ("hold", "release"): _hold_release,
        ("hold", "list"): _hold_list,
        ("retention", "plan"): _plan,
        ("retention", "destroy"): _destroy,
        ("retention", "execute"): _destroy,
        ("retention", "propose"): _propose,
        ("retention", "approve"): _approve,
        ("retention", "lists"): _lists,
        ("retention", "authorise"): _authorise,
        ("catalog", "backup"): _backup,
        ("catalog", "export"): _catalog_export,
    }
    return handlers[(args.command, args.action)](args, where)


def _local(moment: datetime | None, where: Where) -> datetime | None:
    return moment.astimezone(where.tz).replace(tzinfo=None) if moment else None


def _hold_place(args: argparse.Namespace, where: Where) -> int:
    review = moment_arg(args.review_by, where, "--review-by")
    if (cfg := through_daemon(where)) is not None:  # issue 27: as the authenticated person
        hold_id, by = remote.ask(cfg, args, protocol.HoldPlace(
            HoldKind(args.kind), args.case, args.reason, args.recording, args.officer,
            args.camera, _local(moment_arg(args.start, where, "--from"), where),
            _local(moment_arg(args.end, where, "--to", end=True), where),
            review.date() if review else None))  # fmt: skip
        with opened(where, write=False) as db:
            row = holds.get(db, hold_id)
            now = service.covered_now(db, hold_id)
        return output(
            args,
            {"ok": True, "hold": row, "covers_now": now, "note": None, "by": by,
             "channel": remote.CHANNEL},
            lambda: [f"hold {hold_id} placed by {by} ({args.kind}, {args.case}); "
                     + _covers(now)],
        )  # fmt: skip
    with opened(where, write=True) as db:
        by, note = act(where, db, args, "hold")
        hold_id = service.place_hold(
            db,
            _keeping(where),
            by,
            kind=HoldKind(args.kind),
            case=args.case,
            reason=args.reason,
            recording=args.recording,
            officer=args.officer,
            camera=args.camera,
            start=moment_arg(args.start, where, "--from"),
            end=moment_arg(args.end, where, "--to", end=True),
            review_by=review.date() if review else None,
            today=where.today,
        )
        row = holds.get(db, hold_id)
        now = service.covered_now(db, hold_id)
    return output(
        args,
        {"ok": True, "hold": row, "covers_now": now, "note": note},
        lambda: [f"hold {hold_id} placed by {by} ({args.kind}, {args.case}); {_covers(now)}",
                 note or ""],
    )  # fmt: skip


def _covers(now: int) -> str:
    """What a hold keeps today: said, and nothing is an answer too (issue 28)."""
    if now:
        return f"it covers {now} recording(s) now"
    return "it covers no recording yet: footage of its scope docked later is held too"


def _hold_release(args: argparse.Namespace, where: Where) -> int:
    if (cfg := through_daemon(where)) is not None:  # issue 27: as the authenticated person
        _, by = remote.ask(cfg, args, protocol.HoldRelease(args.hold, args.reason))
        with opened(where, write=False) as db:
            row = holds.get(db, args.hold)
        return output(
            args,
            {"ok": True, "hold": row, "note": None, "by": by, "channel": remote.CHANNEL},
            lambda: [f"hold {args.hold} released by {by}"],
        )
    with opened(where, write=True) as db:
        by, note = act(where, db, args, "release")
        service.release_hold(db, _keeping(where), args.hold, by, args.reason)
        row = holds.get(db, args.hold)
    return output(
        args,
        {"ok": True, "hold": row, "note": note},
        lambda: [f"hold {args.hold} released by {by}", note or ""],
    )


def _hold_list(args: argparse.Namespace, where: Where) -> int:
    with opened(where, write=False) as db:
        found = holds.listing(db, released=args.all)
    today = where.today.isoformat()

    def text() -> list[str]:
        lines = []
        for h in found:
            scope = (
                f"recording {h.recording_id}"
                if h.recording_id
                else " ".join(
                    f"{k}={getattr(h, c)}"
                    for k, c in (
                        ("officer", "officer_badge"),
                        ("camera", "camera_id"),
                        ("from", "range_start"),
                        ("to", "range_end"),
                    )
                    if getattr(h, c)
                )
            )
            state = f"released by {h.released_by}" if h.released_at else "in force"
            late = "  REVIEW OVERDUE" if (h.review_by or "9") < today and not h.released_at else ""
            lines.append(
                f"{h.id:>4}  {h.kind:<13} {h.case_ref:<16} {scope}  by {h.placed_by}  {state}{late}"
            )
        return [*lines, f"{len(found)} hold(s)"]

    return output(args, {"holds": found}, text)


def _plan_json(p: Plan) -> dict[str, Any]:
    return {
        "today": p.today.isoformat(),
        "live": p.live,
        "destroyable": p.destroyable,
        "becomes_destroyable_today": p.becomes_destroyable,
        "due": [c.as_json() for c in p.due],
        "held": [{**c.as_json(), "holds": list(ids)} for c, ids in p.held],
        "overdue": [c.id for c in p.overdue],
        "held_past_max": [c.id for c in p.held_past_max],
        "review_due": [h.id for h in p.review_due],
        "interrupted_destructions": list(p.pending),
        "alarms": p.alarms,
    }


def _plan(args: argparse.Namespace, where: Where) -> int:
    with opened(where, write=False) as db:
        p = service.plan_for(db, where.today)
        auto = destruction.live_authorisation(db, where.today)
    return output(
        args,
        {**_plan_json(p), "standing_authorisation": auto.ref if auto else None},
        lambda: [
            f"retention plan for {p.today} ({p.live} recordings kept):",
            f"  due for destruction: {len(p.due)}"
            + (f" (overdue: {len(p.overdue)})" if p.overdue else ""),
            f"  held although due:   {len(p.held)}",
            f"  destroyable on request: {p.destroyable} ({p.becomes_destroyable} from today)",
            *(f"  ALARM {a}" for a in p.alarms),
            f"  destroyed automatically under standing authorisation {auto.ref} "
            f"(approved by {auto.approved_by}, until {auto.expires})"
            if auto
            else "  due footage waits for: camdock retention propose, approve, execute",
        ],
    )


def _propose(args: argparse.Namespace, where: Where) -> int:
    if (cfg := through_daemon(where)) is not None:  # issue 27: as the authenticated person
        chosen = ",".join(str(n) for n in args.recording or ())
        list_id, by = remote.ask(cfg, args, protocol.RetentionPropose(chosen, args.reason))
        return _list_out(args, where, int(list_id), by, f"proposed by {by}", None)
    with opened(where, write=True) as db:
        by, by_id, note = act_as(where, db, args, "destroy-propose")
        list_id = service.propose_list(db, _keeping(where), where.today, by, by_id,
                                       recordings=args.recording, reason=args.reason)  # fmt: skip
        doc = destruction.as_json(_found(db, list_id), destruction.items(db, list_id))
    return output(
        args,
        {"ok": True, "list": doc, "note": note},
        lambda: [
            f"destruction list {list_id} proposed by {by}: {len(doc['recordings'])} "
            "recording(s); it waits for an approver",
            note or "",
        ],
    )


def _list_out(args: argparse.Namespace, where: Where, list_id: int, by: str, what: str,
              note: str | None) -> int:  # fmt: skip
    """A destruction list as the daemon left it, after an act through it."""
    with opened(where, write=False) as db:
        doc = destruction.as_json(_found(db, list_id), destruction.items(db, list_id))
    return output(
        args,
        {"ok": True, "list": doc, "by": by, "note": note, "channel": remote.CHANNEL},
        lambda: [f"destruction list {list_id} {what}: {len(doc['recordings'])} recording(s)"],
    )


def _approve(args: argparse.Namespace, where: Where) -> int:
    if (cfg := through_daemon(where)) is not None:  # issue 27: as the authenticated person
        _, by = remote.ask(cfg, args, protocol.RetentionApprove(args.list))
        return _list_out(args, where, args.list, by, f"approved by {by}", None)
    with opened(where, write=True) as db:
        by, by_id, note = act_as(where, db, args, "destroy-approve")
        service.approve_list(db, args.list, by, by_id, _keeping(where).topics)
        doc = destruction.as_json(_found(db, args.list), destruction.items(db, args.list))
    return output(
        args,
        {"ok": True, "list": doc, "note": note},
        lambda: [f"destruction list {args.list} approved by {by}", note or ""],
    )


def _found(db: Any, list_id: int) -> destruction.DestructionList:
    found = destruction.get(db, list_id)
    assert found is not None
    return found


def _lists(args: argparse.Namespace, where: Where) -> int:
    with opened(where, write=False) as db:
        found = [destruction.as_json(d, destruction.items(db, d.id))
                 for d in destruction.listing(db)]  # fmt: skip
        auth = destruction.live_authorisation(db, where.today)
    return output(
        args,
        {"lists": found, "standing_authorisation": auth},
        lambda: [
            *(
                f"{d['id']:>4}  {d['state']:<9} {len(d['recordings'])} recording(s)  proposed by "
                f"{d['proposed_by']}"
                + (f", approved by {d['approved_by']}" if d["approved_by"] else "")
                for d in found
            ),
            f"standing authorisation {auth.ref} by {auth.approved_by} until {auth.expires}"
            if auth
            else "no standing authorisation in force",
        ],
    )


def _authorise(args: argparse.Namespace, where: Where) -> int:
    until = moment_arg(args.until, where, "--until")
    assert until is not None
    if (cfg := through_daemon(where)) is not None:  # issue 27: as the authenticated person
        auth_id, by = remote.ask(cfg, args, protocol.RetentionAuthorise(
            args.ref, args.custodian, until.date()))  # fmt: skip
        return output(
            args,
            {"ok": True, "authorisation": auth_id, "ref": args.ref,
             "until": until.date().isoformat(), "by": by, "note": None,
             "channel": remote.CHANNEL},
            lambda: [f"standing authorisation {args.ref} recorded by {by}, until {until.date()}"],
        )  # fmt: skip
    with opened(where, write=True) as db:
        by, by_id, note = act_as(where, db, args, "authorise")
        auth_id = service.authorise(db, args.ref, args.custodian, until.date(), by, by_id,
                                    where.today)  # fmt: skip
    return output(
        args,
        {
            "ok": True,
            "authorisation": auth_id,
            "ref": args.ref,
            "until": until.date().isoformat(),
            "by": by,
            "note": note,
        },
        lambda: [
            f"standing authorisation {args.ref} recorded by {by}, until {until.date()}",
            note or "",
        ],
    )


def _destroy(args: argparse.Namespace, where: Where) -> int:
    if (cfg := through_daemon(where)) is not None:  # issue 27: as the authenticated person
        done, by = remote.ask(cfg, args, protocol.RetentionDestroy(args.list, int(args.resume), 1))
        return output(
            args,
            {"ok": True, "by": by, "destroyed": done, "note": None, "channel": remote.CHANNEL},
            lambda: [
                *(
                    f"destroyed recording {d['recording']} ({d['path']}): "
                    f"{len(d['copies'])} cop(ies) removed"
                    for d in done
                ),
                f"{len(done)} recording(s) destroyed by {by}",
            ],
        )
    with opened(where, write=True) as db:
        by, by_id, note = act_as(where, db, args, "destroy")
        if args.list is None:  # destruction without an approved list: refused, recorded
            raise service.refuse_unapproved(db, by, _keeping(where).topics, args.recording)
        done = service.execute_list(db, _keeping(where, args.password_file), where.today,
                                    args.list, by, by_id, resume=args.resume)  # fmt: skip
        doc = destruction.as_json(_found(db, args.list), destruction.items(db, args.list))
    return output(
        args,
        {
            "ok": True,
            "by": by,
            "destroyed": [d.as_json() for d in done],
            "list": doc,
            "note": note,
        },
        lambda: [
            *(
                f"destroyed recording {d.recording} ({d.path}): {len(d.copies)} cop(ies) removed"
                for d in done
            ),
            *(
                f"skipped recording {i['recording_id']}: {i['outcome']}"
                for i in doc["recordings"]
                if i["outcome"] != "destroyed"
            ),
            f"{len(done)} recording(s) destroyed by {by} under list {args.list}"
            + (f"; {note}" if note else ""),
        ],
    )


def _backup(args: argparse.Namespace, where: Where) -> int:
    roots = [str(p) for p in args.to] if args.to else sorted(_keeping(where).roots or ())
    if not roots:
        raise UsageError("--to ROOT: a bare catalog has no drives to back up to")
    keeping = Keeping(
        _keeping(where).policy, _keeping(where).drives, frozenset(roots), _keeping(where).topics
    )
    alarms: list[str] = []
    with opened(where, write=True) as db:
        made = service.backup_everywhere(db, where.catalog, keeping, alarms)
    for a in alarms:
        print(f"camdock catalog backup: {a}", file=sys.stderr)
    output(
        args,
        {"ok": not alarms, "backups": made, "problems": alarms},
        lambda: [f"catalog backed up to {m}" for m in made],
    )
    return ExitCode.OK if not alarms else ExitCode.IOERR


def _a_stations(catalog: Path) -> bool:
    """Whether an existing catalog holds a station's staff or acts (commands/remote)."""
    try:
        db = open_readonly(catalog)
    except CamdockError:
        return False  # not a catalog: the restore says so itself
    try:
        return bool(remote.is_station(None, db))
    finally:
        db.close()


def _restore(args: argparse.Namespace) -> int:
    where = where_from(args)
    by = by_from(args)
    from camdock.core.access import refusal
    from camdock.services.access import acting

    if where.cfg is not None and remote.is_station(where.cfg, None):
        # The catalog is gone and the daemon stopped: the config decides, and the person proves
        # who they are with their password against its hash (issue 27).
        by = remote.verify_locally(where.cfg, args, "restore")
        who = acting(where.cfg, by)
        if why := refusal(who.person, "restore"):
            raise Refused(why)
        by = who.label
    elif where.catalog.is_file() and _a_stations(where.catalog):
        # A station's catalog is replaced only by someone the station's config can prove
        # (hostile review, issue 27): a bare --catalog would be anyone at the shell.
        raise CamdockError(f"{where.catalog} is a station's catalog: restore it with --config "
                           "(your password is checked against the station's staff)",
                           ExitCode.NOUSER)  # fmt: skip
    else:  # a development catalog: nobody could check who this is (issue 27)
        by = acting(None, by).label
    passed: list[str] = []
    made: backup.Backup | None = None
    if not args.reconcile_only:
        made, passed = backup.restore(args.source, where.catalog, replace=args.replace)
    elif not where.catalog.is_file():
        raise UsageError(f"--reconcile-only: no catalog at {where.catalog}")
    db = open_catalog(where.catalog)
    try:
        if made is not None:
            backup_head = restored.head(db)
            with write_txn(db):
                custody.append(
                    db,
                    Action.RESTORE,
                    None,
                    by,
                    {
                        "from": str(made.path),
                        "sha256": made.sha256,
                        "passed_over": passed,
                        "backup_head": backup_head,
                    },
                )
            source, since = str(made.path), str(backup_head[2]) or None
        else:
            last = restored.last_restore(db) or {}
            source = str(last.get("from", "(no restore recorded)"))
            since = (last.get("backup_head") or [0, "", None])[2] or None
        # Issue 28: what happened after the backup comes back from the drives.
        back = reconcile.reconcile(db, _restore_roots(args.source, where, db), source, by, since)
        problems = custody.verify(db)
        entries, recordings = custody.count(db)
    finally:
        db.close()
    doc = {
        "ok": not problems and not back.not_restored,
        "restored_from": source,
        "sha256": made.sha256 if made else None,
        "catalog": str(where.catalog),
        "passed_over": passed,
        "custody_entries": entries,
        "recordings": recordings,
        "problems": problems,
        "by": by,
        "reconciled": back.as_json(),
    }
    output(
        args,
        doc,
        lambda: [
            f"catalog {where.catalog} restored from {source} by {by}"
            if made
            else f"catalog {where.catalog} reconciled with the drives by {by}",
            *(f"  passed over {p}" for p in passed),
            f"brought back from the manifests: {len(back.recordings)} recording(s), "
            f"{len(back.copies)} more cop(ies); from the journal: {len(back.acts)} act(s), "
            f"{len(back.register)} register line(s)",
            *(f"  recording {r['id']}: {r['path']} ({r['manifest']})" for r in back.recordings),
            *(f"  {a}" for a in back.acts),
            *(f"  cannot come back: {n}" for n in back.not_restored),
            *(f"  ignored: {n}" for n in back.ignored),
            f"custody log: {entries} entries, {recordings} recordings: "
            + ("intact" if not problems else f"{len(problems)} problem(s)"),
        ],
    )
    return ExitCode.OK if not problems and not back.not_restored else ExitCode.FAILED


def _restore_roots(source: Path, where: Where, db: Any) -> list[Path]:
    """The drives to reconcile with: the one restored from, the config's, the catalog's."""
    src = source.parent if source.name == backup.BACKUP_DIR else source
    # Each drive once, under the name the catalog's copies give it (they are matched by it).
    named = [Path(r) for r in recordings.destinations(db)]
    named += [Path(d.root) for d in where.cfg.drives] if where.cfg is not None else []
    found: dict[Path, Path] = {}
    for p in [*named, src]:
        if p.is_dir():
            found.setdefault(p.resolve(), p)
    return sorted(found.values())


ANNEX1 = ["id", "duty_slot_start", "duty_slot", "officer_name", "officer_badge", "unit",
          "camera_id", "recorded_start", "recorded_end", "relpath", "size", "sha256",
          "ingested_at", "cleared_at", "retain_until", "destroy_by", "destroyed_at",
          "destroyed_by", "attribution", "time_note"]  # fmt: skip


def _catalog_export(args: argparse.Namespace, where: Where) -> int:
    """Annex 1 for a duty day or an officer, as CSV, JSON or the printed PDF."""
    if (args.day is None) == (args.officer is None):
        raise UsageError("give --day YYYY-MM-DD, or --officer BADGE [--from --to]")
    start = moment_arg(args.start, where, "--from")
    end = moment_arg(args.end, where, "--to", end=True)
    with opened(where, write=False) as db:
        found = recordings.listing(db, day=args.day, officer=args.officer,
                                   start=start.isoformat() if start else None,
                                   end=end.isoformat() if end else None)  # fmt: skip
    what = f"勤務日 duty day {args.day}" if args.day else f"員警 officer {args.officer}"
    if args.format == "pdf":
        if args.out is None:
            raise UsageError("--format pdf needs --out FILE")
        unit = where.cfg.unit if where.cfg else ""
        args.out.write_bytes(forms.pdf(forms.catalog_html(found, what, unit, where.tz)))
        return output(
            args,
            {"ok": True, "pdf": str(args.out), "recordings": len(found)},
            lambda: [f"catalog ({len(found)} recording(s)) written to {args.out}"],
        )
    if args.format == "json":
        doc = json.dumps({"catalog": [{k: getattr(r, k) for k in ANNEX1} for r in found]},
                         ensure_ascii=False)  # fmt: skip
    else:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(ANNEX1)
        w.writerows([[getattr(r, k) for k in ANNEX1] for r in found])
        doc = buf.getvalue()
    if args.out is not None:
        args.out.write_text(doc, encoding="utf-8-sig" if args.format == "csv" else "utf-8")
    else:
        print(doc, end="" if args.format == "csv" else "\n")
    return ExitCode.OK
