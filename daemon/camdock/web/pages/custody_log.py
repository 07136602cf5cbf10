"""The custody log, searched (issue 29): by person (a staff id or the start of a name), action,
recording and days, newest first and paged; the console's answer to "who viewed what"
(REG-7.1). The entries are as the chain recorded them; the daemon reads and bounds them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from camdock import protocol
from camdock.web.console import Console, Me, needs

__all__ = ["ACTION_NAMES", "custody_log"]

_FIELDS = ("person", "action", "recording", "from", "to", "page")
# The custody log's actions as people read them (zh-TW, English): kept here, small and local,
# until the console's shared table of codes (issue 29) takes them over.
ACTION_NAMES = {
    "store": "歸檔 stored", "clear": "清除攝影機 camera cleared", "attribute": "歸屬 attributed",
    "hold-place": "保留 hold placed", "hold-release": "解除保留 hold released",
    "destroy": "銷毀 destroyed", "seal": "封存 sealed", "seal-confirm": "確認封存 seal confirmed",
    "plain-removed": "移除明文檔 plain files removed", "catalog-restore": "還原目錄 restored",
    "audit": "查核 audit", "repair": "修復 repaired", "damage": "受損 damaged",
    "request": "申請 request", "submit": "送出 submitted", "consult": "會辦公關 PR consulted",
    "approve": "核准 approved", "deny": "駁回 denied", "schedule": "排定 scheduled",
    "view": "調閱 viewed", "copy": "複製 copied", "acknowledge": "簽收 acknowledged",
    "close": "結案 closed", "expire": "逾期 expired", "destroy-propose": "提出銷毀清單 proposed",
    "destroy-approve": "核准銷毀清單 list approved", "destroy-execute": "執行銷毀 executed",
    "destroy-authorise": "常態授權 authorised", "view-start": "開始調閱 viewing started",
    "draft-expire": "草稿逾期 draft expired", "refused": "拒絕 refused", "freeze": "凍結 frozen",
    "audit-resolve": "查核解除 resolved", "staff": "人員異動 staff", "state": "狀態 state",
}  # fmt: skip


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
                  names=ACTION_NAMES)  # fmt: skip
