"""The regulation's words for the codes the catalog keeps (issue 29): request states, purposes,
kinds, custody actions, bay phases, hold kinds, destruction lists, offload outcomes and alarms,
each "中文 English". One table: the printed forms (forms.py) and the console (web/) both read
it, so a code never reaches a person untranslated. Values only: no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["TERMS", "alarm_zh", "counts", "duty_entry", "duty_zh", "term"]

_STATES = {
    "draft": "草稿 draft",
    "submitted": "已送出 submitted",
    "approved": "已核准 approved",
    "denied": "否准 denied",
    "scheduled": "已排定 scheduled",
    "done": "已調閱／複製 done",
    "acknowledged": "已簽收 acknowledged",
    "closed": "已結案 closed",
    "expired": "已逾期 expired",
}
_PURPOSES = {
    "investigation": "偵查犯罪 crime investigation",
    "complaint": "民眾陳情 citizen's complaint",
    "official": "其他公務需要 other official need",
    "media": "新聞說明 media statement",
    "campaign": "犯罪預防宣導 crime-prevention campaign",
    "training": "教育訓練 training",
}
_KINDS = {"view": "調閱 view", "copy": "複製 copy", "both": "調閱及複製 view and copy"}
_ACTIONS = {
    "store": "歸檔保存 stored",
    "clear": "清除攝影機 camera cleared",
    "attribute": "歸屬員警 attributed",
    "hold-place": "設定保留 hold placed",
    "hold-release": "解除保留 hold released",
    "destroy": "銷毀 destroyed",
    "seal": "加密封存 sealed",
    "seal-confirm": "確認封存 seal confirmed",
    "plain-removed": "移除未封存檔 plain files removed",
    "catalog-restore": "目錄還原 catalog restored",
    "audit": "查核 audit",
    "repair": "修復副本 copy repaired",
    "damage": "副本損壞 copy damaged",
    "request": "申請 request",
    "submit": "送出 submit",
    "consult": "會辦公關 PR consulted",
    "approve": "核准 approve",
    "deny": "否准 deny",
    "schedule": "排定 schedule",
    "view": "監看調閱 supervised viewing",
    "copy": "複製 copy",
    "acknowledge": "簽收 acknowledge",
    "close": "結案 close",
    "expire": "逾期 expired",
    "destroy-propose": "提出銷毀清單 destruction proposed",
    "destroy-approve": "核准銷毀清單 destruction approved",
    "destroy-execute": "執行銷毀 destruction executed",
    "destroy-authorise": "長期銷毀授權 standing authorisation",
    "destroy-revoke": "撤銷長期銷毀授權 standing authorisation revoked",
    "view-start": "開始觀看 viewing started",
    "draft-expire": "草稿逾期 draft expired",
    "refused": "拒絕 refused",
    "freeze": "凍結 frozen",
    "audit-resolve": "解除凍結 freeze resolved",
    "staff": "人員異動 staff change",
    "state": "狀態 state",
    "destroy-start": "開始銷毀 destruction begun",
    "destroy-stop": "銷毀中止 destruction stopped",
}
_PHASES = {
    "empty": "空 empty",
    "identifying": "辨識中 identifying",
    "unknown-device": "非登錄裝置 unknown device",
    "offloading": "上傳中 offloading",
    "verifying": "驗證中 verifying",
    "done": "完成 done",
    "fault": "故障 fault",
    "interrupted": "中斷 interrupted",
    "testing": "檢測中 testing",
    "test-passed": "檢測通過 test passed",
    "test-failed": "檢測未通過 test failed",
    "take-me": "請取用備用機 take this spare",
    "storage-missing": "儲存裝置遺失 storage missing",
    "unknown": "不明 unknown",
}
_HOLDS = {
    "investigation": "偵查犯罪 investigation",
    "third-party": "第三人權益 third party",
    "complaint": "民眾陳情 complaint",
}
_LISTS = {
    "proposed": "已提出 proposed",
    "approved": "已核准 approved",
    "executed": "已執行 executed",
    "executing": "執行中 executing",
}
_SESSIONS = {
    "completed": "完成 completed",
    "failed": "失敗 failed",
    "interrupted": "中斷 interrupted",
    "running": "進行中 running",
    "cancelled": "取消 cancelled",
}
_ALARMS = {
    "retention-alarm": "保存期限警示 retention alarm",
    "seal-alarm": "封存警示 seal alarm",
    "storage-missing": "儲存裝置遺失 storage missing",
    "catalog-backup-failed": "目錄備份失敗 catalog backup failed",
    "copy-damaged": "副本損壞 copy damaged",
    "selftest-failed": "功能檢測未通過 pre-shift test failed",
    "bay-fault": "充電座故障 bay fault",
    "access-refused": "拒絕存取 access refused",
}

TERMS: Mapping[str, Mapping[str, str]] = {
    "state": _STATES,
    "purpose": _PURPOSES,
    "kind": _KINDS,
    "action": _ACTIONS,
    "phase": _PHASES,
    "hold": _HOLDS,
    "list": _LISTS,
    "session": _SESSIONS,
    "alarm": _ALARMS,
    # What a custody count or a fixity count names (the audit report's dicts).
    "count": {**_ACTIONS, **_SESSIONS},
}


def term(group: str, code: Any) -> str:
    """``code`` of ``group`` as "中文 English"; an unknown code as it is (never hidden)."""
    if code is None:
        return ""
    return TERMS[group].get(str(code), str(code))


def counts(group: str, found: Mapping[str, Any] | None) -> str:
    """A ``{code: n}`` count as people read it ("複製 copy 1、調閱 view 2"), "0" when empty."""
    if not found:
        return "0"
    return "、".join(f"{term(group, k)} {v}" for k, v in sorted(found.items()))


# The duty-log entries the daemon writes in English (core/preshift.py, offload/engine.py), with
# their Chinese: matched by shape, the English kept beside it as the record has it.
_DUTY = [
    (
        re.compile(
            r"^Camera (?P<cam>\S+) of (?P<who>.+?) failed its pre-shift test at bay "
            r"(?P<bay>\d+): (?P<why>.*?)\. Report it for repair \(REG-3\.2\)\.(?P<rest>.*)$",
            re.S,
        ),
        "{who} 之攝影機 {cam} 於第 {bay} 座功能檢測未通過：{why}，應報修（REG-3.2）。{more}",
    ),
    (
        re.compile(
            r"^Filing of the footage of camera (?P<cam>\S+) \((?P<who>.*?)\) "
            r"(?P<what>was interrupted|could not be completed) \(REG-4\.2\.7\): "
            r"(?P<why>.*)$",
            re.S,
        ),
        "攝影機 {cam}（{who}）之影音資料歸檔{what}（REG-4.2.7）：{why}",
    ),
]
# The alarms the retention pass raises in English (core/retention.py, services/retention.py).
_ALARM_SENTENCES = [
    (re.compile(r"^(?P<n>\d+) recording\(s\) past their destruction date \(REG-4\.3\.1\) and "
                r"not held$"), "{n} 筆影音資料已逾銷毀期限（REG-4.3.1）且未保留"),
    (re.compile(r"^(?P<n>\d+) recording\(s\) kept past one year by a hold that is not an "
                r"investigation$"), "{n} 筆影音資料因非偵查之保留已保存逾一年"),
    (re.compile(r"^hold\(s\) (?P<ids>.+) past their review date$"), "保留 {ids} 已逾覆核期限"),
    (re.compile(r"^destruction could not run: (?P<why>.*)$", re.S), "銷毀未能執行：{why}"),
    (re.compile(r"^(?P<n>\d+) recording\(s\) due for destruction today and no standing "
                r"authorisation in force"), ("今日有 {n} 筆影音資料到期應銷毀，且無有效之長期授權："
                                         "請由保管人員提出銷毀清單，核准人核准")),
]  # fmt: skip
_SPARE = re.compile(r"Spare (?P<spare>\S+) \(bay (?P<bay>\d+)\) issued\.")


def duty_entry(text: str) -> str:
    """A duty-log entry as "中文 English": the Chinese from its shape, then the record's own
    words; an entry already in Chinese (or of another shape) as it is."""
    zh = duty_zh(text)
    return text if zh is None else f"{zh} {text}"


def alarm_zh(text: str) -> str | None:
    """The Chinese of an alarm the retention pass wrote in English (None: not one of those)."""
    for pattern, zh in _ALARM_SENTENCES:
        m = pattern.match(text)
        if m is not None:
            return zh.format(**m.groupdict())
    return None


def duty_zh(text: str) -> str | None:
    """The Chinese of a duty-log entry the daemon wrote in English (None: not one of those)."""
    for pattern, zh in _DUTY:
        m = pattern.match(text)
        if m is None:
            continue
        parts = m.groupdict()
        if "what" in parts:
            parts["what"] = "中斷" if parts["what"] == "was interrupted" else "未完成"
        rest = parts.pop("rest", "") or ""
        spare = _SPARE.search(rest)
        if spare:
            parts["more"] = f"已借用備用機 {spare['spare']}（第 {spare['bay']} 座）。"
        elif "No tested spare" in rest:
            parts["more"] = "無已檢測之備用機。"
        else:
            parts["more"] = ""
        return zh.format(**parts)
    return None
