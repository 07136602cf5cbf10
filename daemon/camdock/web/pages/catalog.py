"""The catalog: the search by officer (name or badge), camera, case and duty days, paged,
counted and sorted (issue 29), and one recording with its copies, its seal and its custody
history."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from camdock import protocol
from camdock.web.console import Console, Me, needs

__all__ = ["catalog", "pager", "recording"]

# The query's names as the search form sends them (``day``: one duty day, as links made before
# the range were); anything else in the URL is ignored.
_FIELDS = ("officer", "camera", "case", "from", "to", "sort", "desc", "page", "per")


@needs
async def catalog(c: Console, request: Request, me: Me) -> Response:
    """The recordings found by ?officer=, ?camera=, ?case=, ?from=…&to= (or ?day=), one page
    of ?page= sorted by ?sort= (?desc=0 oldest first); a parameter that is not one is a 400."""
    q = request.query_params
    raw: dict[str, Any] = {k: q[k] for k in _FIELDS if q.get(k)}
    if q.get("day"):
        raw.setdefault("from", q["day"])
        raw.setdefault("to", q["day"])
    ask = protocol.CatalogFind.parse(raw)
    found = await c.ask(request, ask)
    return c.page(request, "catalog.html", found=found, q=raw, ask=ask,
                  pages=pager(raw, found), sorts=list(protocol.CatalogSort))  # fmt: skip


def pager(raw: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """The page's place in the results: its number, the last, and the links before and after
    (the same query, another page)."""
    per = int(found["per"])
    page = int(found["offset"]) // per + 1
    last = max(1, -(-int(found["total"]) // per))

    def link(n: int) -> str:
        return "?" + urlencode({**{k: v for k, v in raw.items() if k != "page"}, "page": n})

    return {
        "page": page,
        "last": last,
        "first_row": int(found["offset"]) + 1 if found["rows"] else 0,
        "last_row": int(found["offset"]) + len(found["rows"]),
        "prev": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < last or found["more"] else None,
        "sort": lambda key: "?" + urlencode({**{k: v for k, v in raw.items() if k != "page"},
                                             "sort": key, "desc": _flip(raw, key)}),
    }  # fmt: skip


def _flip(raw: dict[str, Any], key: str) -> int:
    """The direction a column's sort link asks for: reversed when it is the sort in force."""
    current = raw.get("sort", "recorded")
    desc = str(raw.get("desc", "1")) != "0"
    return (0 if desc else 1) if current == key else 1


@needs
async def recording(c: Console, request: Request, me: Me) -> Response:
    """One recording."""
    got = await c.ask(request, protocol.RecordingGet.parse(request.path_params))
    return c.page(request, "recording.html", **got)
