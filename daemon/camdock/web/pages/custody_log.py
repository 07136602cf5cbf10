"""The custody log, searched (issue 29): by person (a staff id or the start of a name), action,
recording and days, newest first and paged; the console's answer to "who viewed what"
(REG-7.1). The entries are as the chain recorded them; the daemon reads and bounds them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from camdock import protocol, terms
from camdock.web.console import Console, Me, needs

__all__ = ["custody_log"]

_FIELDS = ("person", "action", "recording", "from", "to", "page")


@needs
async def custody_log(c: Console, request: Request, me: Me) -> Response:
    """Custody entries by ?person=, ?action=, ?recording=, ?from=…&to=, page ?page=."""
    q = request.query_params
    raw: dict[str, Any] = {k: q[k] for k in _FIELDS if q.get(k)}
    found = await c.ask(request, protocol.CustodySearch.parse(raw))
    per = int(found["per"])
    page = int(found["offset"]) // per + 1
    last = max(1, -(-int(found["total"]) // per))
    rest = {k: v for k, v in raw.items() if k != "page"}
    pages = {
        "page": page,
        "last": last,
        "first_row": int(found["offset"]) + 1 if found["rows"] else 0,
        "last_row": int(found["offset"]) + len(found["rows"]),
        "prev": "?" + urlencode({**rest, "page": page - 1}) if page > 1 else None,
        "next": "?" + urlencode({**rest, "page": page + 1})
        if page < last or found["more"] else None,
    }  # fmt: skip
    return c.page(request, "custody_log.html", found=found, q=raw, pages=pages,
                  names=terms.TERMS["action"])  # fmt: skip
