"""The pages over a period (?from=…&to=…, days): the audit report (REG-7.2), the duty log with
the pre-shift tests (REG-3.2; paged, counted and sorted by time: issue 29), and the
access/copy register (Annex 3); the report and the register also print (PDF)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from camdock import clock, forms, protocol
from camdock.config import Config
from camdock.web.console import Console, Me, needs
from camdock.web.pages.catalog import pager

__all__ = ["audit_page", "duty_page", "register_page"]


@needs
async def audit_page(c: Console, request: Request, me: Me) -> Response:
    """The audit report for the period, as a page or (``.pdf``) printed."""
    first, last = _days(request, c.cfg)
    doc = await c.ask(request, protocol.AuditReport(first, last))
    if request.url.path.endswith(".pdf"):
        html = forms.report_html(doc, c.cfg.unit, c.cfg.tz)
        return Response(await asyncio.to_thread(forms.pdf, html),
                        media_type="application/pdf")  # fmt: skip
    body = forms.report_body(doc, c.cfg.unit, c.cfg.tz)
    return c.page(request, "audit.html", body=body, start=first, end=last)


@needs
async def duty_page(c: Console, request: Request, me: Me) -> Response:
    """The duty log and the pre-shift tests of the period."""
    first, last = _days(request, c.cfg)
    start, end = _utc_bounds(first, last, c.cfg)
    q = request.query_params
    raw: dict[str, Any] = {k: q[k] for k in ("from", "to", "desc", "page") if q.get(k)}
    ask = protocol.DutyLog.parse({"start": start, "end": end,
                                  **{k: raw[k] for k in ("desc", "page") if k in raw}})  # fmt: skip
    got = await c.ask(request, ask)
    longer = max(got["tests"], got["entries"], key=len)
    total = max(got["tests_total"], got["entries_total"])
    pages = pager(raw, {**got, "rows": longer, "total": total, "more": False})
    flip = "?" + urlencode({**{k: v for k, v in raw.items() if k != "page"},
                            "desc": 0 if ask.desc else 1})  # fmt: skip
    return c.page(request, "duty.html", **got, start=first, end=last, pages=pages,
                  desc=bool(ask.desc), flip=flip)  # fmt: skip


@needs
async def register_page(c: Console, request: Request, me: Me) -> Response:
    """The access/copy register of the period, as a page or (``.pdf``) printed."""
    first, last = _days(request, c.cfg)
    start, end = _utc_bounds(first, last, c.cfg)
    lines = await c.ask(request, protocol.Register(start, end))
    if request.url.path.endswith(".pdf"):
        html = forms.register_html(lines, str(first), str(last), c.cfg.unit, c.cfg.tz)
        return Response(await asyncio.to_thread(forms.pdf, html),
                        media_type="application/pdf")  # fmt: skip
    return c.page(request, "register.html", lines=lines, start=first, end=last)


# The days a period may name: the station's records begin after 1970 and a day past 9998 has
# no end in every zone (``/duty?from=0001-01-01`` was a 500: issue 29).
EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)


def _days(request: Request, cfg: Config) -> tuple[date, date]:
    """?from=…&to=… (days), the last six months by default; a day out of range, or a period
    that ends before it starts, is a 400."""
    today = clock.now().astimezone(cfg.tz).date()
    try:
        first = date.fromisoformat(request.query_params.get("from") or "")
    except ValueError:
        first = today - timedelta(days=183)
    try:
        last = date.fromisoformat(request.query_params.get("to") or "")
    except ValueError:
        last = today
    for name, day in (("from", first), ("to", last)):
        if not EARLIEST <= day <= LATEST:
            raise protocol.BadRequest(
                f"日期須在 {EARLIEST} 至 {LATEST} 之間 a day between {EARLIEST} and {LATEST}", name
            )
    if last < first:
        raise protocol.BadRequest("迄日早於起日 the period ends before it starts", "to")
    return first, last


def _utc_bounds(first: date, last: date, cfg: Config) -> tuple[str, str]:
    lo = datetime.combine(first, datetime.min.time(), cfg.tz)
    hi = datetime.combine(last, datetime.max.time(), cfg.tz)
    return lo.astimezone(UTC).isoformat(), hi.astimezone(UTC).isoformat()
