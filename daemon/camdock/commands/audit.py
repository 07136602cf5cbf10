"""``camdock audit``: the custody chain (REG-7.1) against the heads on the drives and the
server's witness, and with ``--full`` the fixity of every stored copy, read back from disk.
``--by AUDITOR`` records the audit in the custody log (REG-7.2)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from camdock import forms
from camdock.catalog import custody, freezes, open_catalog
from camdock.catalog.custody import Action
from camdock.catalog.db import write_txn
from camdock.commands.common import (
    check_person,
    day_text,
    default_catalog,
    opened,
    output,
    person,
    seal_key,
    where_from,
)
from camdock.errors import ExitCode, UsageError
from camdock.services import audit as service
from camdock.services.seal import Key

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """The ``audit`` subcommand's options."""
    a = sub.add_parser(
        "audit",
        help="verify the custody log and, with --full, every stored copy; "
        "'audit report' writes the six-monthly report (REG-7.2); 'audit resolve' lifts a "
        "freeze, putting the recording back as the custody chain has it",
    )
    a.add_argument("what", nargs="?", choices=["report", "resolve"],
                   help="the six-monthly report, or resolving a frozen recording")  # fmt: skip
    a.add_argument("--recording", type=int, metavar="ID", help="resolve: the frozen recording")
    a.add_argument("--reason", metavar="TEXT", help="resolve: what the auditor found")
    a.add_argument("--from", dest="start", type=day_text, metavar="YYYY-MM-DD",
                   help="the report's first day")  # fmt: skip
    a.add_argument("--to", dest="end", type=day_text, metavar="YYYY-MM-DD",
                   help="the report's last day")  # fmt: skip
    a.add_argument("--out", type=Path, metavar="FILE", help="the report as PDF (else JSON)")
    a.add_argument("--catalog", type=Path, default=None, metavar="FILE",
                   help=f"catalog database (default {default_catalog()})")  # fmt: skip
    a.add_argument("--config", type=Path, metavar="FILE", help="the station's config")
    a.add_argument("--full", action="store_true",
                   help="re-hash every stored copy and sealed archive from disk; list missing, "
                   "changed, unreadable and extra files")  # fmt: skip
    a.add_argument("--witness", type=Path, metavar="FILE",
                   help="the heads the station server saw (camdock monitor --witness)")  # fmt: skip
    a.add_argument("--by", metavar="AUDITOR", help="record this audit in the custody log")
    a.add_argument("--password-file", type=Path, metavar="FILE",
                   help="the seal password: sealed members are checked too")  # fmt: skip
    a.add_argument("--key-dir", type=Path, metavar="DIR",
                   help="a root-only folder of <key id>.key files: every key the seals were "
                   "made under")  # fmt: skip
    a.add_argument("--json", action="store_true", help="one JSON document on stdout")


def _key(args: argparse.Namespace, where: Any) -> Key | None:
    key: Key | None = seal_key(where, args.password_file, args.key_dir)
    if key is None:
        print("camdock audit: no seal password; sealed archives are checked by their hash only",
              file=sys.stderr)  # fmt: skip
    return key


def _progress(n: int, total: int) -> None:
    if n == total or n % 500 == 0:
        print(f"camdock audit: fixity {n}/{total} copies", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Audit; exit 0 when everything is intact, 1 otherwise (a CamdockError is reported by
    cli.main)."""
    where = where_from(args)
    auditor = person(args.by) if args.by else None
    if args.what == "resolve":
        return _resolve(args, where, auditor)
    with opened(where, write=False) as db:
        roots = [str(d.root) for d in where.cfg.drives] if where.cfg else service.roots_of(db)
        station = where.cfg.station_id if where.cfg else None
        problems = service.chain(db, roots, args.witness, station)
        entries, recordings = custody.count(db)
        findings: list[service.Finding] = []
        proven = 0
        if args.full:
            findings, proven = service.fixity(db, roots, _key(args, where), _progress)
    ok = not problems and not findings
    summary = _report(args, where, problems, findings, auditor) if args.what == "report" else None
    if auditor is not None:  # REG-7.2: the audit itself is on the record, naming the auditor
        db = open_catalog(where.catalog)
        try:
            auditor, _ = check_person(where.cfg, db, auditor, "audit")
            with write_txn(db):
                custody.append(db, Action.AUDIT, None, auditor, {
                    "full": args.full, "problems": len(problems), "findings": len(findings),
                    "copies_proven": proven, "witness": str(args.witness or "")})  # fmt: skip
            service.publish_head(db, roots)
        finally:
            db.close()
    if summary is not None:
        if args.out is not None:
            unit = where.cfg.unit if where.cfg else ""
            args.out.write_bytes(forms.pdf(forms.report_html(summary, unit, where.tz)))
        if args.json or args.out is None:
            print(json.dumps(summary, ensure_ascii=False, default=str))
        else:
            period = summary["period"]
            print(f"audit report {period['from']} – {period['to']} written to {args.out}")
        return ExitCode.OK if ok else ExitCode.FAILED
    doc = {"ok": ok, "custody_entries": entries, "recordings": recordings,
           "chain_problems": problems, "full": args.full, "copies_proven": proven,
           "findings": [f.as_json() for f in findings], "by": auditor}  # fmt: skip
    output(args, doc, lambda: [
        *(f"PROBLEM {p}" for p in problems), *(str(f) for f in findings),
        f"custody log: {entries} entries, {recordings} recordings: "
        + ("intact" if not problems else f"{len(problems)} problem(s)"),
        *([f"fixity: {proven} copies proven from disk, {len(findings)} finding(s)"]
          if args.full else []),
    ])  # fmt: skip
    return ExitCode.OK if ok else ExitCode.FAILED


def _resolve(args: argparse.Namespace, where: Any, auditor: str | None) -> int:
    """An auditor resolves a frozen recording (issue 26): its rows as the chain has them."""
    if auditor is None or args.recording is None or not (args.reason or "").strip():
        raise UsageError("audit resolve needs --recording ID --by AUDITOR --reason TEXT")
    db = open_catalog(where.catalog)
    try:
        auditor, _ = check_person(where.cfg, db, auditor, "resolve")
        restored = freezes.resolve(db, args.recording, auditor, args.reason.strip())
    finally:
        db.close()
    doc = {"recording": args.recording, "by": auditor, "restored_from_chain": restored}
    output(
        args,
        doc,
        lambda: [
            f"recording {args.recording}: resolved by {auditor}; put back "
            f"as the custody chain has it: {', '.join(restored) or 'nothing'}"
        ],
    )
    return ExitCode.OK


def _report(
    args: argparse.Namespace,
    where: Any,
    problems: list[str],
    findings: list[service.Finding],
    auditor: str | None,
) -> dict[str, Any]:
    """The six-monthly report's figures (REG-7.2, REG-7.3) for --from … --to."""
    if not args.start or not args.end:
        raise UsageError("audit report needs --from YYYY-MM-DD --to YYYY-MM-DD")
    try:
        first, last = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError:
        raise UsageError("--from/--to: YYYY-MM-DD") from None
    with opened(where, write=False) as db:
        return service.period_report(db, where.tz, first, last, where.today, problems, findings,
                                     auditor, args.full)  # fmt: skip
