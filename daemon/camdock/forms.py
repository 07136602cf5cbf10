"""The printed forms (non-negotiable 8): the Annex 2 request, the Annex 3 register and the Annex
1 catalog, laid out like the paper forms, in Traditional Chinese with the regulation's terms
(English beneath, smaller), as PDF. HTML and CSS rendered by WeasyPrint with Debian's Noto CJK
fonts; nothing is fetched from the network (no external resources in the pages).

The pages are Jinja2 templates in camdock/templates/forms/ (one per form, the page and its CSS
in page.html), escaped as they render; a value that is None prints as nothing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import tzinfo
from typing import Any, Protocol

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context
from jinja2.runtime import Context

from camdock import clock, terms

__all__ = [
    "Annex1Line",
    "catalog_html",
    "pdf",
    "register_html",
    "report_body",
    "report_html",
    "request_html",
]

PURPOSES = terms.TERMS["purpose"]
KINDS = terms.TERMS["kind"]


_ENV = Environment(
    loader=PackageLoader("camdock", "templates/forms"),
    autoescape=True,
    undefined=StrictUndefined,  # a field missing from a row fails, as a KeyError did
    finalize=lambda value: "" if value is None else value,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals |= {"PURPOSES": PURPOSES, "KINDS": KINDS}
# Codes in the station's words (terms.py, the table the console reads too).
_ENV.filters |= {
    "term": lambda code, group: terms.term(group, code),
    "counts": lambda found, group: terms.counts(group, found),
    "duty": terms.duty_entry,
}


# Times on a form are the station's (clock.local_text): ``|local`` a date and time, ``|localsec``
# with seconds, ``|localday`` the day, ``|clocktime`` the time of day with seconds.
@pass_context
def _local(ctx: Context, value: Any) -> str:
    return clock.local_text(value, ctx["tz"])


@pass_context
def _localsec(ctx: Context, value: Any) -> str:
    return clock.local_text(value, ctx["tz"], seconds=True)


@pass_context
def _localday(ctx: Context, value: Any) -> str:
    return clock.local_day(value, ctx["tz"])


@pass_context
def _clocktime(ctx: Context, value: Any) -> str:
    return clock.local_text(value, ctx["tz"], seconds=True)[11:]


_ENV.filters |= {"local": _local, "localsec": _localsec, "localday": _localday,
                 "clocktime": _clocktime}  # fmt: skip


def _render(name: str, tz: tzinfo | None = None, **ctx: Any) -> str:
    zone = tz or clock.machine_zone()
    return _ENV.get_template(name).render(tz=zone, zone=clock.zone_label(zone), **ctx)


def request_html(req: dict[str, Any], recordings: list[dict[str, Any]],
                 tz: tzinfo | None = None) -> str:  # fmt: skip
    """Annex 2, field by field (調閱／複製申請書), times in ``tz`` (the station's zone)."""
    return _render("request.html", tz, req=req, recordings=recordings)


def register_html(lines: list[dict[str, Any]], start: str, end: str, unit: str,
                  tz: tzinfo | None = None) -> str:  # fmt: skip
    """Annex 3, the access/copy register (調閱／複製紀錄清冊) for a period."""
    return _render("register.html", tz, lines=lines, start=start, end=end, unit=unit, wide=True)


class Annex1Line(Protocol):
    """What Annex 1 prints of a recording (the catalog's row has these columns)."""

    @property
    def id(self) -> int: ...
    @property
    def duty_slot_start(self) -> str: ...
    @property
    def duty_slot(self) -> str: ...
    @property
    def officer_name(self) -> str | None: ...
    @property
    def officer_badge(self) -> str | None: ...
    @property
    def camera_id(self) -> str: ...
    @property
    def recorded_start(self) -> str: ...
    @property
    def recorded_end(self) -> str | None: ...
    @property
    def relpath(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def ingested_at(self) -> str: ...
    @property
    def cleared_at(self) -> str | None: ...
    @property
    def retain_until(self) -> str | None: ...
    @property
    def destroy_by(self) -> str | None: ...
    @property
    def destroyed_at(self) -> str | None: ...
    @property
    def destroyed_by(self) -> str | None: ...


def catalog_html(recordings: Iterable[Annex1Line], what: str, unit: str,
                 tz: tzinfo | None = None) -> str:  # fmt: skip
    """Annex 1, the catalog (目錄清冊) for a day or an officer."""
    return _render("catalog.html", tz, recordings=list(recordings), what=what, unit=unit,
                   wide=True)  # fmt: skip


def pdf(html: str) -> bytes:
    """The page as PDF (WeasyPrint, imported only here: it loads fonts and Pango)."""
    import logging

    from weasyprint import HTML  # type: ignore[import-untyped]

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return bytes(HTML(string=html).write_pdf())


def report_html(doc: dict[str, Any], unit: str, tz: tzinfo | None = None) -> str:
    """The six-monthly audit report (REG-7.2, REG-7.3) as a printable page."""
    return _render("report.html", tz, doc=doc, unit=unit)


def report_body(doc: dict[str, Any], unit: str, tz: tzinfo | None = None) -> str:
    """The report's content, section by section (the console shows it as a page too)."""
    return _render("report_body.html", tz, doc=doc, unit=unit)
