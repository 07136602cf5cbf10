"""The printed forms (non-negotiable 8): the Annex 2 request, the Annex 3 register and the Annex
1 catalog, laid out like the paper forms, in Traditional Chinese with the regulation's terms
(English beneath, smaller), as PDF. HTML and CSS rendered by WeasyPrint with Debian's Noto CJK
fonts; nothing is fetched from the network (no external resources in the pages)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Any, Protocol

__all__ = [
    "Annex1Line",
    "catalog_html",
    "pdf",
    "register_html",
    "report_body",
    "report_html",
    "request_html",
]

PURPOSES = {
    "investigation": "偵查犯罪 crime investigation",
    "complaint": "民眾陳情 citizen's complaint",
    "official": "其他公務需要 other official need",
    "media": "新聞說明 media statement",
    "campaign": "犯罪預防宣導 crime-prevention campaign",
    "training": "教育訓練 training",
}
KINDS = {"view": "調閱 view", "copy": "複製 copy", "both": "調閱及複製 view and copy"}

CSS = """
@page { size: A4; margin: 14mm 12mm; @bottom-right { content: counter(page) " / " counter(pages);
        font-size: 8pt; } }
@page wide { size: A4 landscape; }
body { font-family: "Noto Sans CJK TC", "Noto Sans CJK", sans-serif; font-size: 10pt; }
.wide { page: wide; }
h1 { font-size: 15pt; text-align: center; margin: 0 0 2mm; }
h1 small, th small, td small { display: block; font-size: 7.5pt; font-weight: normal;
                                color: #333; }
p.meta { text-align: right; font-size: 9pt; margin: 0 0 3mm; }
table { width: 100%; border-collapse: collapse; }
th, td { border: 0.6pt solid #000; padding: 1.6mm 2mm; vertical-align: top; text-align: left; }
th { background: #eee; width: 28%; font-weight: bold; }
.grid th { width: auto; font-size: 8.5pt; }
.grid td { font-size: 8.5pt; }
.sign td { height: 16mm; }
.note { font-size: 8.5pt; margin-top: 3mm; }
code { font-family: "Noto Sans Mono CJK TC", monospace; font-size: 7pt; word-break: break-all; }
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _page(title: str, body: str, *, wide: bool = False) -> str:
    cls = ' class="wide"' if wide else ""
    return (f'<!DOCTYPE html><html lang="zh-TW"><head><meta charset="utf-8"><title>{_e(title)}'
            f"</title><style>{CSS}</style></head><body{cls}>{body}</body></html>")  # fmt: skip


def _heads(head: list[tuple[str, str]]) -> str:
    return "".join(f"<th>{z}<small>{e}</small></th>" for z, e in head)


def _row(zh: str, en: str, value: Any) -> str:
    return f"<tr><th>{zh}<small>{en}</small></th><td>{value}</td></tr>"


def request_html(req: Mapping[str, Any], recordings: list[Mapping[str, Any]]) -> str:
    """Annex 2, field by field (調閱／複製申請書), from the request's and its recordings'
    columns as JSON carries them (the console's reply, or a catalog row's ``as_dict``)."""
    recs = "<br>".join(f"{_e(r['id'])}：{_e(r['relpath'])}" for r in recordings)
    slot = f"{_e(req['range_start'])} ～ {_e(req['range_end'])}"
    body = (
        "<h1>微型攝影機影音資料調閱／複製申請書<small>Body-worn camera footage access / copy "
        "request (Annex 2)</small></h1>"
        f'<p class="meta">編號 No. {_e(req["number"])}　狀態 state：{_e(req["state"])}</p><table>'
        + _row("單位全銜", "full unit name", _e(req["unit_full_name"]))
        + _row("申請日期", "date", _e(req["created_at"][:10]))
        + _row("申請單位、職稱、姓名", "applicant unit, title, name",
               f"{_e(req['applicant_unit'])}　{_e(req['applicant_title'])}　"
               f"{_e(req['applicant_name'])}（{_e(req['applicant_id'])}）")
        + _row("（一）攝錄員警", "(1) officer who recorded", _e(req["recorded_by"] or "—"))
        + _row("（二）勤務項目及日期時段", "(2) duty item, date and time slot",
               f"{_e(req['duty_item'])}　{slot}")
        + _row("（三）調閱或複製及事由", "(3) view or copy, and the reason",
               f"{KINDS.get(req['kind'], _e(req['kind']))}：{_e(req['reason'])}")
        + _row("（四）用途", "(4) purpose", PURPOSES.get(req["purpose"], _e(req["purpose"])))
        + _row("調閱時間", "viewing date and time",
               _e(req["window_start"] or req["viewing_at"] or ""))
        + _row("影音資料", "recordings (catalog no.: file)", recs)
        + _row("申請人簽章", "applicant's signature", _e(req["acknowledged_by"] or ""))
        + _row("單位主管", "unit supervisor", _e(req["unit_supervisor"]))
        + _row("核准", "approval", f"{_e(req['approved_by'] or '')}　{_e(req['approved_at'] or '')}"
               + (f"<br>否准 denied：{_e(req['denied_reason'])}（{_e(req['denied_by'])}）"
                  if req["denied_by"] else ""))
        + _row("公共關係單位（會辦）", "public-relations unit (consulted)",
               _e(req["pr_consulted_by"] or "—"))
        + _row("承辦單位（審核）", "handling unit (review)", _e(req["handling_review"] or ""))
        + "</table>"
        '<p class="note">備註：供新聞媒體或對外公開者，應會辦公共關係單位；'
        "調閱或複製之內容不得外流或作其他用途。<br>"
        "Note: for media or external disclosure the public-relations unit is "
        "consulted; content viewed or copied must not leak or be used for any other purpose.</p>"
    )  # fmt: skip
    return _page(f"申請書 {req['number']}", body)


def register_html(lines: list[dict[str, Any]], start: str, end: str, unit: str) -> str:
    """Annex 3, the access/copy register (調閱／複製紀錄清冊) for a period."""
    head = [("登記編號", "no."), ("申請書編號", "request"), ("日期時間", "date, time"),
            ("申請人", "applicant"), ("影音資料", "recordings"), ("調閱／複製", "view/copy"),
            ("用途", "purpose"), ("核准", "approved"), ("會辦公關", "PR"),
            ("保管人", "custodian"), ("媒體及清單雜湊", "medium, manifest"),
            ("簽收", "acknowledged"), ("備註", "remarks")]  # fmt: skip
    rows = "".join(
        "<tr>" + "".join(f"<td>{c}</td>" for c in (
            _e(g["id"]), _e(g["number"]), _e(g["time"][:16].replace("T", " ")),
            f"{_e(g['applicant_unit'])} {_e(g['applicant_title'])} {_e(g['applicant_name'])}",
            _e(", ".join(map(str, g["recordings"]))), KINDS.get(g["kind"], _e(g["kind"])),
            PURPOSES.get(g["purpose"], _e(g["purpose"])),
            f"{_e(g['approved_by'])}<br>{_e((g['approved_at'] or '')[:10])}",
            _e(g["pr_consulted_by"] or "—"), _e(g["custodian"]),
            f"{_e(g['medium'] or '')}<br><code>{_e(g['manifest_sha256'] or '')}</code>",
            _e((g["acknowledged_at"] or "")[:10]), _e(g["remarks"] or ""))) + "</tr>"
        for g in lines)  # fmt: skip
    body = (f"<h1>微型攝影機影音資料調閱／複製紀錄清冊<small>Access / copy register (Annex 3) — "
            f"{_e(unit)}</small></h1><p class='meta'>{_e(start)} ～ {_e(end)}　共 {len(lines)} 筆"
            f"</p><table class='grid'><tr>{_heads(head)}</tr>{rows}</table>")  # fmt: skip
    return _page("調閱／複製紀錄清冊", body, wide=True)


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


def catalog_html(recordings: Iterable[Annex1Line], what: str, unit: str) -> str:
    """Annex 1, the catalog (目錄清冊) for a day or an officer."""
    head = [("序號", "no."), ("日期", "date"), ("勤務時段", "slot"), ("員警", "officer"),
            ("攝影機", "camera"), ("錄影起訖", "recorded"), ("檔名及資料夾", "file"),
            ("大小", "size"), ("SHA-256", "hash"), ("歸檔時間", "filed"), ("清除時間", "cleared"),
            ("保存期限", "keep / destroy by"), ("銷毀", "destroyed")]  # fmt: skip
    recs = list(recordings)
    rows = "".join(
        "<tr>" + "".join(f"<td>{c}</td>" for c in (
            _e(r.id), _e((r.duty_slot_start or "")[:10]), _e(r.duty_slot),
            f"{_e(r.officer_name or '未歸屬')} {_e(r.officer_badge or '')}",
            _e(r.camera_id),
            f"{_e((r.recorded_start or '')[11:19])}–{_e((r.recorded_end or '')[11:19])}",
            _e(r.relpath), f"{r.size / 1e6:.1f} MB", f"<code>{_e(r.sha256)}</code>",
            _e((r.ingested_at or "")[:16].replace("T", " ")),
            _e((r.cleared_at or "")[:16].replace("T", " ")),
            f"{_e(r.retain_until)} / {_e(r.destroy_by)}",
            f"{_e((r.destroyed_at or '')[:10])} {_e(r.destroyed_by or '')}")) + "</tr>"
        for r in recs)  # fmt: skip
    body = (f"<h1>微型攝影機影音資料目錄清冊<small>Footage catalog (Annex 1) — {_e(unit)}</small>"
            f"</h1><p class='meta'>{_e(what)}　共 {len(recs)} 筆</p><table class='grid'><tr>"
            f"{_heads(head)}</tr>{rows}</table>")  # fmt: skip
    return _page("目錄清冊", body, wide=True)


def pdf(html: str) -> bytes:
    """The page as PDF (WeasyPrint, imported only here: it loads fonts and Pango)."""
    import logging

    from weasyprint import HTML  # type: ignore[import-untyped]

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return bytes(HTML(string=html).write_pdf())


def report_html(doc: dict[str, Any], unit: str) -> str:
    """The six-monthly audit report (REG-7.2, REG-7.3) as a printable page."""
    return _page("查核報告", report_body(doc, unit))


def report_body(doc: dict[str, Any], unit: str) -> str:
    """The report's content, section by section (the console shows it as a page too)."""
    p = doc["period"]
    rec, ret, seal, reg = doc["recordings"], doc["retention"], doc["seals"], doc["register"]

    def table(head: list[tuple[str, str]], body: list[list[Any]]) -> str:
        rows = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in body)
        return f"<table class='grid'><tr>{_heads(head)}</tr>{rows or ''}</table>"

    def verdict(ok: bool) -> str:
        return "✔ 符合 compliant" if ok else "✘ 待改善 needs action"

    sections = [
        ("一、攝影機功能檢測", "Pre-shift tests per officer (REG-3.2)",
         table([("員警", "officer"), ("攝影機", "camera"), ("檢測次數", "tests"),
                ("通過", "passed")],
               [[f"{t['officer_name'] or ''} {t['officer_badge'] or ''}", t["camera_id"],
                 t["tests"], t["passed"]] for t in doc["selftests"]])),
        ("二、歸檔未完成", "Failed filings and duty-log entries (REG-4.2.7)",
         table([("時間", "time"), ("員警", "officer"), ("攝影機", "camera"), ("紀錄", "entry")],
               [[d["time"][:16], f"{d['officer_name'] or ''} {d['officer_badge'] or ''}",
                 d["camera_id"], d["entry"]] for d in doc["duty_log"]])
         + "<p>" + "；".join(f"{_e(s['status'])}: {_e(s['n'])}" for s in doc["sessions"])
         + "</p>"),
        ("三、影音資料", "Recordings, attribution, camera clocks",
         f"<p>歸檔 ingested {rec['ingested']}；未歸屬 unattributed {rec['unattributed']}；"
         f"時間可疑 suspect time {rec['time_suspect']}</p>"),
        ("四、保存與銷毀", "Retention (REG-4.3.1)",
         f"<p>{verdict(not ret['destroyed_early'] and not ret['overdue_now'])}：銷毀 destroyed "
         f"{ret['destroyed']}；提前銷毀 destroyed early {len(ret['destroyed_early'])}；"
         f"逾期未銷毀 overdue now {ret['overdue_now']}；逾期未覆核之保留 holds past review "
         f"{len(ret['holds_past_review'])}</p>"),
        ("五、每日加密封存", "Daily seals and confirmations (REG-4.2.5)",
         f"<p>{verdict(not seal['unsealed'] and not seal['unconfirmed'])}：勤務日 days "
         f"{seal['days']}；已封存 sealed {seal['sealed']}；已確認 confirmed {seal['confirmed']}"
         f"</p><p>未封存 unsealed：{_e(', '.join(seal['unsealed']) or '—')}<br>未確認 unconfirmed："
         f"{_e(', '.join(seal['unconfirmed']) or '—')}</p>"),
        ("六、調閱／複製紀錄", "The register against the custody log (REG-5.3)",
         f"<p>{verdict(reg['complete'])}：清冊 register {_e(reg['lines'])}；監管紀錄 custody "
         f"{_e(reg['custody_entries'])}；拒絕 refusals {reg['refusals']}</p>"),
        ("七、檔案完整性", "Fixity and the custody chain (REG-7.1)",
         f"<p>{verdict(not doc['chain_problems'] and not doc['fixity']['findings'])}："
         f"巡檢 scrub {_e(doc['fixity']['scrub'])}；本次查核 findings "
         f"{len(doc['fixity']['findings'])}；稽核 audits {len(doc['fixity']['audits'])}</p>"
         + "".join(f"<p>✘ {_e(x)}</p>" for x in doc["chain_problems"][:20])
         + "".join(f"<p>✘ {_e(x)}</p>" for x in doc["fixity"]["findings"][:20])),
    ]  # fmt: skip
    body = (f"<h1>微型攝影機及影音資料保存管理查核報告<small>Body-worn camera audit report "
            f"(REG-7.2) — {_e(unit)}</small></h1><p class='meta'>{_e(p['from'])} ～ "
            f"{_e(p['to'])}　查核人 auditor：{_e(doc['by'] or '—')}</p>"
            + "".join(f"<h2 style='font-size:11pt'>{z}<small style='font-size:8pt'> {e}</small>"
                      f"</h2>{content}" for z, e, content in sections))  # fmt: skip
    return body
