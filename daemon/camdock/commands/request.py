"""``camdock request …`` and ``camdock register export``: the access/copy workflow (REG-5,
REG-6, Annexes 2 and 3) from the command line, every step with ``--by STAFF``, checked against
the station's staff and recorded."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from camdock import clock, forms, protocol
from camdock.catalog import requests
from camdock.commands import remote
from camdock.commands.common import (
    Where,
    by_from,
    direct,
    int_between,
    moment_arg,
    opened,
    output,
    seal_key,
    text_arg,
    through_daemon,
    where_from,
)
from camdock.config import Config
from camdock.core.access import Purpose
from camdock.errors import CamdockError, ExitCode, UsageError
from camdock.events import Topics
from camdock.services import access as service

__all__ = ["add_parsers", "run"]

STEPS = ("submit", "consult", "approve", "deny", "schedule", "view", "acknowledge", "close")


def _common(p: argparse.ArgumentParser, *, by: bool = True, password_file: bool = True) -> None:
    if by:
        p.add_argument("--by", metavar="STAFF", help="who acts: a staff id of the station")
        remote.add_credentials(p, password_file=password_file)
    p.add_argument("--config", type=Path, metavar="FILE", help="the station's config")
    p.add_argument("--catalog", type=Path, metavar="FILE", help="a catalog without a config")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")


# A declarative table, long on purpose: the workflow's commands and their options.
def add_parsers(sub: Any) -> None:
    """The ``request`` and ``register`` subcommands."""
    r = sub.add_parser("request", help="access/copy requests (Annex 2, REG-5)")
    rs = r.add_subparsers(dest="action", required=True)
    new = rs.add_parser("new", help="draft a request; its recordings are listed")
    new.add_argument(
        "--officer", type=text_arg, metavar="BADGE", help="(1) the officer who recorded"
    )
    new.add_argument("--camera", type=text_arg, metavar="ID", help="the camera")
    new.add_argument(
        "--from",
        dest="start",
        required=True,
        metavar="WHEN",
        help="(2) the date/time slot: from YYYY-MM-DD[THH:MM]",
    )
    new.add_argument("--to", dest="end", required=True, metavar="WHEN", help="to (inclusive)")
    new.add_argument("--duty-item", default="", help="(2) the duty item")
    new.add_argument("--kind", required=True, choices=("view", "copy", "both"), help="(3)")
    new.add_argument("--reason", type=text_arg, required=True, help="(3) the concrete reason")
    new.add_argument(
        "--purpose",
        required=True,
        choices=[p.value for p in Purpose],
        help="(4) investigation, complaint, official; media, campaign, training "
        "(REG-6: the public-relations unit is consulted for media and campaigns)",
    )
    new.add_argument("--viewing-at", metavar="WHEN", help="the viewing date and time asked for")
    new.add_argument("--unit-supervisor", default="", help="the applicant's unit supervisor")
    new.add_argument("--applicant-unit", default="")
    new.add_argument("--applicant-title", default="")
    _common(new)
    for name in STEPS:
        s = rs.add_parser(name, help=f"{name} a request")
        s.add_argument("number", metavar="REQUEST", help="its number (YYYY-NNNN)")
        if name == "approve":
            s.add_argument(
                "--valid-days",
                type=int_between(0, 366, "days"),
                default=30,
                help="the approval's lifetime",
            )
            s.add_argument("--note", help="the handling unit's review")
        if name == "deny":
            s.add_argument("--reason", type=text_arg, required=True)
        if name == "schedule":
            s.add_argument("--at", required=True, metavar="WHEN", help="YYYY-MM-DDTHH:MM")
            s.add_argument(
                "--minutes",
                type=int_between(1, 24 * 60, "minutes"),
                default=120,
                help="how long the window is",
            )
        if name == "view":
            s.add_argument("--remarks")
        _common(s)
    c = rs.add_parser("copy", help="make the approved verified copy onto an export medium")
    c.add_argument("number", metavar="REQUEST")
    c.add_argument("--to", required=True, type=Path, metavar="DIR", help="the export medium")
    c.add_argument("--medium", help="how the medium is recorded (label, serial)")
    c.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="on a station: your password (the daemon uses the station's seal key); on a "
        "development catalog: the seal password, for recordings whose plain files are gone",
    )
    _common(c, password_file=False)
    show = rs.add_parser("show", help="one request, field by field, with its recordings")
    show.add_argument("number", metavar="REQUEST")
    show.add_argument("--pdf", type=Path, metavar="FILE", help="also the printed Annex 2 form")
    _common(show, by=False)
    _common(rs.add_parser("list", help="every request"), by=False)

    g = sub.add_parser("register", help="the access/copy register (Annex 3)")
    gs = g.add_subparsers(dest="action", required=True)
    e = gs.add_parser("export", help="the register for a period")
    e.add_argument("--from", dest="start", required=True, metavar="YYYY-MM-DD")
    e.add_argument("--to", dest="end", required=True, metavar="YYYY-MM-DD")
    e.add_argument("--format", choices=("csv", "json", "pdf"), default="csv")
    e.add_argument("--out", type=Path, metavar="FILE", help="write here (PDF needs it)")
    _common(e, by=False)


def _topics(where: Where) -> Topics | None:
    cfg = where.cfg
    return cfg.topics if cfg else None


def run(args: argparse.Namespace) -> int:
    """One workflow step (a CamdockError, refusals included, is reported by cli.main)."""
    where = where_from(args)
    topics = _topics(where)
    if args.command == "register":
        return _export(args, where)
    if args.action in ("show", "list"):
        return _show(args, where)
    if (cfg := through_daemon(where)) is not None:
        return _remote(args, where, cfg)
    by = by_from(args) if not getattr(args, "as_", None) else args.as_
    with opened(where, write=True) as db:
        who = direct(where.cfg, db, by, args.action)
        note = None if who.checked else service.NO_ROLES
        if args.action == "new":
            return _new(args, where, db, who, note, topics)
        if args.action == "copy":
            key = seal_key(where, args.password_file)
            done = service.copy(db, who, args.number, args.to, key, topics, medium=args.medium)
            return output(
                args,
                {"ok": True, **done, "note": note},
                lambda: [
                    f"request {done['request']}: {len(done['files'])} file(s) copied to "
                    f"{done['folder']}, verified; manifest SHA-256 {done['manifest_sha256']}"
                ],
            )
        req = service.step(db, who, args.number, args.action, topics, clock.now(),
                           **_step_args(args, where))  # fmt: skip
    return output(
        args,
        {"ok": True, "request": req, "note": note},
        lambda: [f"request {req.number}: {args.action} by {who.label}; now {req.state}"],
    )


def _local(moment: datetime | None, where: Where) -> datetime | None:
    """A moment as the protocol carries it: local time in the station's zone, no offset."""
    return moment.astimezone(where.tz).replace(tzinfo=None) if moment else None


def _remote(args: argparse.Namespace, where: Where, cfg: Config) -> int:
    """A step asked of the station's daemon as the authenticated person (issue 27)."""
    if args.action == "new":
        start = _local(moment_arg(args.start, where, "--from"), where)
        end = _local(moment_arg(args.end, where, "--to", end=True), where)
        assert start is not None and end is not None
        made, by = remote.ask(cfg, args, protocol.RequestNew(
            start, end, protocol.RequestKind(args.kind), Purpose(args.purpose), args.duty_item,
            args.reason, args.unit_supervisor, args.officer, args.camera,
            _local(moment_arg(args.viewing_at, where, "--viewing-at"), where),
            args.applicant_unit, args.applicant_title))  # fmt: skip
        recs = made["recordings"]
        return output(
            args,
            {
                "ok": True,
                "request": made["request"],
                "recordings": recs,
                "note": None,
                "by": by,
                "channel": remote.CHANNEL,
            },
            lambda: [
                f"request {made['number']} drafted by {by}: {len(recs)} recording(s)",
                *(f"  {r['id']}: {r['relpath']}" for r in recs),
            ],
        )
    if args.action == "copy":
        done, by = remote.ask(cfg, args, protocol.RequestCopy(
            args.number, str(args.to.absolute()), args.medium or ""))  # fmt: skip
        return output(
            args,
            {"ok": True, **done, "note": None, "by": by, "channel": remote.CHANNEL},
            lambda: [
                f"request {done['request']}: {len(done['files'])} file(s) copied to "
                f"{done['folder']}, verified; manifest SHA-256 {done['manifest_sha256']}"
            ],
        )
    kw = _step_args(args, where)
    at = kw.get("start")
    step = protocol.RequestStep(
        args.number, args.action, reason=kw.get("reason") or "", at=_local(at, where),
        minutes=args.minutes if args.action == "schedule" else None,
        valid_days=kw.get("valid_days"), note=kw.get("note") or "",
        remarks=kw.get("remarks") or "")  # fmt: skip
    got, by = remote.ask(cfg, args, step)
    req = got["request"]
    return output(
        args,
        {"ok": True, "request": req, "note": None, "by": by, "channel": remote.CHANNEL},
        lambda: [f"request {req['number']}: {args.action} by {by}; now {req['state']}"],
    )


def _step_args(args: argparse.Namespace, where: Where) -> dict[str, Any]:
    """What each plain step takes from the command line."""
    if args.action == "approve":
        return {"valid_days": args.valid_days, "note": args.note}
    if args.action == "deny":
        return {"reason": args.reason}
    if args.action == "schedule":
        start = moment_arg(args.at, where, "--at")
        assert start is not None
        return {"start": start, "end": start + timedelta(minutes=args.minutes)}
    if args.action == "view":
        return {"remarks": args.remarks}
    return {}


def _show(args: argparse.Namespace, where: Where) -> int:
    """``request list`` and ``request show`` (with its Annex 2 as PDF)."""
    with opened(where, write=False) as db:
        if args.action == "list":
            found = requests.listing(db)
            return output(
                args,
                {"requests": found},
                lambda: [
                    f"{r.number}  {r.state:<12} {r.kind:<5} {r.purpose:<13} "
                    f"{r.applicant_name} ({r.applicant_id})"
                    for r in found
                ],
            )
        got = requests.get(db, args.number)
        if got is None:
            raise CamdockError(f"no request {args.number}", ExitCode.NOINPUT)
        shown = got.as_dict()
        recs = requests.recordings_of(db, got.id)
    if args.pdf is not None:
        args.pdf.write_bytes(
            forms.pdf(forms.request_html(shown, [r.as_dict() for r in recs], where.tz))
        )
    return output(
        args,
        {"request": shown, "recordings": recs},
        lambda: [
            *(f"{k:<16} {v}" for k, v in shown.items() if v not in (None, "")),
            *(f"  recording {r.id}: {r.relpath}" for r in recs),
        ],
    )


def _new(
    args: argparse.Namespace,
    where: Where,
    db: Database,
    who: service.Acting,
    note: str | None,
    topics: Topics | None,
) -> int:
    """``request new``: the draft, with the recordings its range selects."""
    start = moment_arg(args.start, where, "--from")
    end = moment_arg(args.end, where, "--to", end=True)
    assert start is not None and end is not None
    viewing = moment_arg(args.viewing_at, where, "--viewing-at")
    form = {
        "duty_item": args.duty_item,
        "kind": args.kind,
        "reason": args.reason,
        "purpose": args.purpose,
        "unit_supervisor": args.unit_supervisor,
        "applicant_unit": args.applicant_unit,
        "applicant_title": args.applicant_title,
        "viewing_at": viewing.isoformat() if viewing else None,
    }
    draft = service.new_request(
        db, where.cfg, who, form, (args.officer, args.camera, start, end), topics
    )
    recs = requests.recordings_of(db, draft.id)
    return output(
        args,
        {"ok": True, "request": draft, "recordings": recs, "note": note},
        lambda: [
            f"request {draft.number} drafted by {who.label}: {len(recs)} recording(s)",
            *(f"  {r.id}: {r.relpath}" for r in recs),
        ],
    )


def _export(args: argparse.Namespace, where: Where) -> int:
    start = moment_arg(args.start, where, "--from")
    end = moment_arg(args.end, where, "--to", end=True)
    assert start is not None and end is not None
    with opened(where, write=False) as db:
        between = (start.astimezone(UTC).isoformat(), end.astimezone(UTC).isoformat())
        lines = [line.as_dict() for line in requests.register_between(db, *between)]
    if args.format == "pdf":
        if args.out is None:
            raise UsageError("--format pdf needs --out FILE")
        unit = where.cfg.unit if where.cfg else ""
        args.out.write_bytes(
            forms.pdf(forms.register_html(lines, args.start, args.end, unit, where.tz))
        )
        return output(
            args,
            {"ok": True, "pdf": str(args.out), "lines": len(lines)},
            lambda: [f"register ({len(lines)} line(s)) written to {args.out}"],
        )
    # Machines read ISO 8601 with the station's offset, never a bare UTC time (issue 29).
    lines = [
        {k: clock.iso_local(v, where.tz) if k == "time" or k.endswith("_at") else v
         for k, v in line.items()}
        for line in lines
    ]  # fmt: skip
    if args.format == "json" or args.json:
        print(json.dumps({"register": lines}, ensure_ascii=False))
        return ExitCode.OK
    buf = io.StringIO()
    cols = [
        "id",
        "number",
        "time",
        "applicant_unit",
        "applicant_title",
        "applicant_name",
        "recordings",
        "kind",
        "purpose",
        "approved_by",
        "approved_at",
        "pr_consulted_by",
        "custodian",
        "medium",
        "manifest_sha256",
        "acknowledged_at",
        "remarks",
    ]
    w = csv.writer(buf)
    w.writerow(
        [
            "登記編號 register no.",
            "申請書編號 request no.",
            "日期時間 time",
            "申請單位 unit",
            "職稱 title",
            "姓名 name",
            "影音資料 recordings",
            "調閱或複製 view/copy",
            "用途 purpose",
            "核准 approved by",
            "核准日期 approved at",
            "會辦公關 PR consulted",
            "保管人 custodian",
            "媒體 medium",
            "清單雜湊 manifest SHA-256",
            "簽收 acknowledged",
            "備註 remarks",
        ]
    )
    for line in lines:
        w.writerow(
            [" ".join(map(str, line[c])) if c == "recordings" else line.get(c) or "" for c in cols]
        )
    if args.out is not None:
        args.out.write_text(buf.getvalue(), encoding="utf-8-sig")  # opens right in Excel
    else:
        print(buf.getvalue(), end="")
    return ExitCode.OK
