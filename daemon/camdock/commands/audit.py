"""``camdock audit``: the custody chain (REG-7.1) against the heads on the drives and the
server's witness, and with ``--full`` the fixity of every stored copy, read back from disk.
``--by AUDITOR`` records the audit in the custody log (REG-7.2)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from camdock import forms, protocol
from camdock.catalog import chainkey, custody, freezes, open_catalog, rowchain
from camdock.catalog.custody import Action
from camdock.catalog.db import write_txn
from camdock.commands import remote
from camdock.commands.common import (
    check_person,
    day_text,
    default_catalog,
    opened,
    output,
    person,
    seal_key,
    through_daemon,
    where_from,
)
from camdock.config import Config
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
    a.add_argument("what", nargs="?", choices=["report", "resolve", "history"],
                   help="the six-monthly report, resolving a frozen recording, or one "
                   "recording's custody history (who, through which channel)")  # fmt: skip
    a.add_argument(
        "--recording",
        type=int,
        metavar="ID",
        help="resolve: the recording (frozen, or its rows edited or deleted); history: the "
        "recording",
    )
    a.add_argument("--hold", type=int, metavar="ID", help="resolve: a hold edited or deleted")
    a.add_argument(
        "--request",
        type=int,
        metavar="ID",
        help="resolve: a request (or its recordings) edited or deleted",
    )
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
    remote.add_credentials(a, password_file=False)
    a.add_argument("--password-file", type=Path, metavar="FILE",
                   help="the seal password: sealed members are checked too; on a station, with "
                   "--by (or --as): your own password, to record the audit")  # fmt: skip
    a.add_argument("--chain-key", type=Path, metavar="FILE",
                   help="an auditor's copy of the station's chain key: every entry's MAC is "
                   "checked (default: the station's key file, when readable)")  # fmt: skip
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
    auditor = person(args.by or args.as_) if (args.by or args.as_) else None
    if args.what == "history":
        return _history(args, where)
    cfg = through_daemon(where)
    if args.what == "resolve" and cfg is not None:
        return _remote_resolve(args, cfg)
    if args.what == "resolve":
        return _resolve(args, where, auditor)
    with opened(where, write=False) as db:
        roots = [str(d.root) for d in where.cfg.drives] if where.cfg else service.roots_of(db)
        station = where.cfg.station_id if where.cfg else None
        chain_key = _chain_key(args)
        problems = service.chain(db, roots, args.witness, station, chain_key)
        keys = custody.verify_keys(db, chain_key)[1]
        entries, recordings = custody.count(db)
        unproven = rowchain.baseline_only(db)
        findings: list[service.Finding] = []
        proven = 0
        if args.full:  # on a station --password-file is the auditor's own: seals by --key-dir
            seal = (_key(args, where) if cfg is None or auditor is None
                    else seal_key(where, None, args.key_dir))  # fmt: skip
            findings, proven = service.fixity(db, roots, seal, _progress)
    # A recording being destroyed is reported as such; it is the retention pass's alarm.
    ok = not problems and all(f.kind == "destroying" for f in findings)
    summary = _report(args, where, problems, findings, auditor) if args.what == "report" else None
    if auditor is not None and cfg is not None:  # REG-7.2, issue 27: as who logged in
        ran = protocol.AuditRecord(len(problems), len(findings), proven, int(args.full),
                                   str(args.witness or ""))  # fmt: skip
        _, auditor = remote.ask(cfg, args, ran)
    elif auditor is not None:  # REG-7.2: the audit itself is on the record, naming the auditor
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
           "findings": [f.as_json() for f in findings], "by": auditor,
           "baseline_only": unproven, "keys": asdict(keys)}  # fmt: skip
    output(args, doc, lambda: [
        *(f"PROBLEM {p}" for p in problems), *(str(f) for f in findings),
        f"custody log: {entries} entries, {recordings} recordings: "
        + ("intact" if not problems else f"{len(problems)} problem(s)"),
        *([f"fixity: {proven} copies proven from disk, {len(findings)} finding(s)"]
          if args.full else []),
        *_baseline_lines(unproven),
        f"chain key: {keys.keyed} entries keyed, {keys.unkeyed} unkeyed from before the "
        "key; " + ("every MAC checked" if keys.checked else "MACs not checked (no key: "
                   "--chain-key FILE)"),
    ])  # fmt: skip
    return ExitCode.OK if ok else ExitCode.FAILED


def _chain_key(args: argparse.Namespace) -> bytes | None:
    """The key the MACs are checked with: ``--chain-key``, else this process's (the station's
    key file when readable, or CAMDOCK_CHAIN_KEY)."""
    if args.chain_key is None:
        return chainkey.current()
    key = chainkey.load(args.chain_key)
    if key is None:
        raise UsageError(f"--chain-key {args.chain_key}: cannot be read")
    return key


def _baseline_lines(unproven: dict[str, list[str]]) -> list[str]:
    """The rows only the upgrade's baseline chained: a note, not a failure (README, the trust
    boundary): they were trusted as found when the chain began to cover rows (m014)."""
    return [f"NOTE {table}: {len(keys)} row(s) chained only by the upgrade's baseline, never by "
            f"an act since: {' '.join(keys[:20])}{' …' if len(keys) > 20 else ''}"
            for table, keys in sorted(unproven.items())]  # fmt: skip


def _history(args: argparse.Namespace, where: Any) -> int:
    """One recording's custody entries, oldest first: when, what, who and the channel it came
    through (console, cli, daemon; none for entries from before m021)."""
    if args.recording is None:
        raise UsageError("audit history needs --recording ID")
    with opened(where, write=False) as db:
        entries = custody.history(db, args.recording)
    shown = [{**e.as_dict(), "details": e.details_json()} for e in entries]
    return output(args, {"recording": args.recording, "history": shown}, lambda: [
        f"{e.time}  {e.action:<14} {e.actor}  [{e.channel or '-'}]"
        for e in entries])  # fmt: skip


def _remote_resolve(args: argparse.Namespace, cfg: Config) -> int:
    """Issue 26/27: the station's daemon resolves it as the authenticated auditor."""
    chosen = [(k, v) for k in ("recording", "hold", "request")
              if (v := getattr(args, k)) is not None]  # fmt: skip
    if len(chosen) != 1 or not (args.reason or "").strip():
        raise UsageError("audit resolve needs one of --recording/--hold/--request ID, "
                         "--as AUDITOR and --reason TEXT")  # fmt: skip
    kind, ident = chosen[0]
    done, auditor = remote.ask(cfg, args, protocol.AuditResolve(
        args.recording, args.reason.strip(), args.hold, args.request))  # fmt: skip
    restored = done["restored_from_chain"]
    doc = {kind: ident, "by": auditor, "restored_from_chain": restored,
           "channel": remote.CHANNEL}  # fmt: skip
    output(args, doc, lambda: [
        f"{kind} {ident}: resolved by {auditor}; put back as the custody chain has "
        f"it: {', '.join(restored) or 'nothing'}"])  # fmt: skip
    return ExitCode.OK


def _resolve(args: argparse.Namespace, where: Any, auditor: str | None) -> int:
    """An auditor resolves a frozen recording (issue 26): its rows as the chain has them."""
    chosen = [(k, v) for k in ("recording", "hold", "request")
              if (v := getattr(args, k)) is not None]  # fmt: skip
    if auditor is None or len(chosen) != 1 or not (args.reason or "").strip():
        raise UsageError("audit resolve needs one of --recording/--hold/--request ID, "
                         "--by AUDITOR and --reason TEXT")  # fmt: skip
    kind, ident = chosen[0]
    db = open_catalog(where.catalog)
    try:
        auditor, _ = check_person(where.cfg, db, auditor, "resolve")
        restored = freezes.resolve(db, ident, auditor, args.reason.strip(), kind)
    finally:
        db.close()
    doc = {kind: ident, "by": auditor, "restored_from_chain": restored}
    output(
        args,
        doc,
        lambda: [
            f"{kind} {ident}: resolved by {auditor}; put back "
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
