"""``camdock retention revoke-authorisation REF``: an approver ends a standing destruction
authorisation at once (REG-4.3.1, REG-7.1; issue 27, gap 3). On a station it goes through the
daemon as the authenticated person (the approver role checked there); on a development catalog
the person named by ``--by``. Revoked twice: the second is told who revoked it and when."""

from __future__ import annotations

import argparse
from typing import Any

from camdock import protocol
from camdock.clock import local_text
from camdock.commands import remote
from camdock.commands.common import Where, act_as, opened, output, text_arg, through_daemon
from camdock.services import retention as service

__all__ = ["add_parser", "revoke"]


def add_parser(rs: Any, common: Any) -> None:
    """The subcommand, beside ``retention authorise``."""
    p = rs.add_parser("revoke-authorisation",
                      help="an approver revokes a standing authorisation at once")  # fmt: skip
    p.add_argument("ref", metavar="REF", help="the written authorisation's reference number")
    p.add_argument("--reason", type=text_arg, required=True, help="why it is revoked")
    common(p)


def revoke(args: argparse.Namespace, where: Where) -> int:
    """Revoke standing authorisation ``args.ref``."""
    if (cfg := through_daemon(where)) is not None:  # as the authenticated person (issue 27)
        row, by = remote.ask(cfg, args, protocol.RetentionRevoke(args.ref, args.reason))
        note = None
    else:
        with opened(where, write=True) as db:
            by, by_id, note = act_as(where, db, args, "revoke-authorisation")
            topics = where.cfg.topics if where.cfg else None
            done = service.revoke_authorisation(db, args.ref, by, by_id, args.reason, topics)
            row = done.as_dict()
    when = local_text(row["revoked_at"], where.tz)
    return output(
        args,
        {"ok": True, "authorisation": row, "by": by, "note": note},
        lambda: [
            f"standing authorisation {args.ref} revoked by {by} at {when}: nothing more "
            "is destroyed under it",
            note or "",
        ],
    )
