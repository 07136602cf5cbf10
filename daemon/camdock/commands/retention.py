"""``camdock hold``, ``camdock retention`` and ``camdock catalog``: holds, the retention plan,
destruction (REG-4.3.1) and the catalog's backups (REG-4.3.2), from the station's config or a
bare ``--catalog FILE``. Each action names the person (``--by``) in the custody log."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

from camdock import protocol
from camdock.catalog import (
    destruction,
    holds,
)
from camdock.catalog import retention as retention_rows
from camdock.catalog.retention import Destroying
from camdock.clock import local_text
from camdock.commands import remote, retention_revoke
from camdock.commands.common import (
    Where,
    act,
    act_as,
    moment_arg,
    opened,
    output,
    text_arg,
    through_daemon,
    where_from,
)
from camdock.config import SealSettings
from camdock.core.retention import HoldKind, Plan
from camdock.services import retention as service
from camdock.services.retention import Keeping
from camdock.services.seal import Sealing, load_key, seal_day

__all__ = ["add_parsers", "common", "keeping_of", "run"]


def common(p: argparse.ArgumentParser, *, by: bool = True, login: bool = True,
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
    """The ``hold`` and ``retention`` subcommands."""
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
    common(place)
    rel = hs.add_parser("release", help="end a hold")
    rel.add_argument("hold", type=int, metavar="HOLD")
    rel.add_argument("--reason", type=text_arg, required=True)
    common(rel)
    lst = hs.add_parser("list", help="the holds in force")
    lst.add_argument("--all", action="store_true", help="released holds too")
    common(lst, by=False)

    r = sub.add_parser("retention", help="the retention plan, and destruction (REG-4.3.1)")
    rs = r.add_subparsers(dest="action", required=True)
    common(rs.add_parser("plan", help="what is due, held, overdue today"), by=False)
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
    common(propose)
    approve = rs.add_parser("approve", help="an approver (not the proposer) approves a list")
    approve.add_argument("list", type=int, metavar="LIST")
    common(approve)
    lists = rs.add_parser("lists", help="the destruction lists and the standing authorisations")
    common(lists, by=False)
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
        common(destroy, password_file=False)
    auth = rs.add_parser("authorise", help="an approver's standing authorisation for the daemon")
    auth.add_argument("--ref", required=True, help="the written authorisation's reference number")
    auth.add_argument("--custodian", required=True, metavar="STAFF",
                      help="under whose name the daemon's destructions are recorded")  # fmt: skip
    auth.add_argument("--until", required=True, metavar="YYYY-MM-DD", help="its last day")
    common(auth)
    retention_revoke.add_parser(rs, common)


def keeping_of(where: Where, password_file: Path | None = None) -> Keeping:
    if where.cfg is not None:
        return Keeping.from_config(where.cfg, password_file)
    if password_file is None:
        return Keeping()
    key = load_key(SealSettings(), password_file)
    return Keeping(reseal=lambda db, day, by: seal_day(db, Sealing(key), day, by))


def run(args: argparse.Namespace) -> int:
    """Run ``hold`` or ``retention`` (a CamdockError is reported by cli.main)."""
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
        ("retention", "revoke-authorisation"): retention_revoke.revoke,
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
            keeping_of(where),
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
        service.release_hold(db, keeping_of(where), args.hold, by, args.reason)
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


def _plan_json(p: Plan, going: list[Destroying]) -> dict[str, Any]:
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
        "destroying": [d.as_json() for d in going],
        "requests": [dataclasses.asdict(r) for r in p.requests],
        "alarms": p.alarms,
    }


def _request_lines(p: Plan, where: Where) -> list[str]:
    """What each open request holds and until when (issue 28), in the station's time."""
    return [f"  request {r.request} ({r.state}) holds {len(r.recordings)} recording(s) "
            f"{', '.join(map(str, r.recordings))}: "
            + (f"until {local_text(r.until, where.tz)}, " if r.until else "") + r.note
            for r in p.requests]  # fmt: skip


def _plan(args: argparse.Namespace, where: Where) -> int:
    with opened(where, write=False) as db:
        p = service.plan_for(db, where.today, where.cfg.draft_days if where.cfg else 7)
        going = retention_rows.destroying(db)
        auto = destruction.live_authorisation(db, where.today)
    return output(
        args,
        {**_plan_json(p, going), "standing_authorisation": auto.ref if auto else None},
        lambda: [
            f"retention plan for {p.today} ({p.live} recordings kept):",
            f"  due for destruction: {len(p.due)}"
            + (f" (overdue: {len(p.overdue)})" if p.overdue else ""),
            f"  held although due:   {len(p.held)}",
            f"  destroyable on request: {p.destroyable} ({p.becomes_destroyable} from today)",
            *(
                f"  being destroyed: recording {d.recording} since "
                f"{local_text(d.since, where.tz)}"
                + (f", stopped: {d.stopped_reason}" if d.stopped_reason else "")
                for d in going
            ),
            *_request_lines(p, where),
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
        list_id = service.propose_list(db, keeping_of(where), where.today, by, by_id,
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
        service.approve_list(db, args.list, by, by_id, keeping_of(where).topics)
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
        every = destruction.authorisations(db)  # revoked ones too, saying by whom (gap 3)
    return output(
        args,
        {"lists": found, "standing_authorisation": auth, "authorisations": every},
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
            *(
                f"standing authorisation {a.ref} revoked by {a.revoked_by} at "
                f"{local_text(a.revoked_at, where.tz)}"
                for a in every
                if a.revoked_at
            ),
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
            raise service.refuse_unapproved(db, by, keeping_of(where).topics, args.recording)
        done = service.execute_list(db, keeping_of(where, args.password_file), where.today,
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
