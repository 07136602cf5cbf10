"""The pre-shift function test's verdict (REG-3.2): a pure function of what the camera answered
and the station's policy, with a reason for every failed check."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Policy:
    min_battery: int = 80  # percent
    max_drift_after_sync: float = 2.0  # seconds, after the clock was set
    longest_slot_seconds: int = 8 * 3600  # the longest configured duty slot
    allowed_firmware: tuple[str, ...] = ()  # empty: any
    default_bitrate: int = 8_000_000  # bits/s, when the camera does not say


@dataclass(frozen=True)
class Answers:
    """What the camera said, step by step; ``errors`` holds a step's failure instead."""

    identity: dict[str, str] | None = None
    registered: bool | None = None  # None: no registry to check against (camdock selftest)
    drift_before: float | None = None  # camera clock minus station clock, seconds
    drift_after: float | None = None
    battery: dict[str, str] | None = None
    storage: dict[str, str] | None = None
    camera_checks: dict[str, str] | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    value: str
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    passed: bool
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def summary(self) -> str:
        if self.passed:
            return "all checks passed"
        return "; ".join(f"{c.name}: {c.reason}" for c in self.failed)


def _missing(a: Answers, step: str) -> Check:
    return Check(step, False, "-", a.errors.get(step, "camera did not answer"))


def _int(d: dict[str, str], key: str) -> int | None:
    try:
        return int(d[key])
    except (KeyError, ValueError):
        return None


def verdict(a: Answers, p: Policy) -> Verdict:
    checks: list[Check] = []

    if a.identity is None:
        checks.append(_missing(a, "identity"))
    else:
        who = f"{a.identity.get('model', '?')} {a.identity.get('serial', '?')}"
        if a.registered is False:
            checks.append(Check("identity", False, who, "not a registered camera (REG-2)"))
        else:
            checks.append(Check("identity", True, who))
        fw = a.identity.get("firmware", "")
        if p.allowed_firmware:
            ok = fw in p.allowed_firmware
            checks.append(
                Check(
                    "firmware",
                    ok,
                    fw,
                    "" if ok else f"firmware {fw or '?'} is not in the allowed list",
                )
            )

    if a.drift_after is None:
        checks.append(_missing(a, "clock"))
    else:
        before = "unknown" if a.drift_before is None else f"{a.drift_before:+.1f} s"
        value = f"drift before sync {before}, after {a.drift_after:+.2f} s"
        ok = abs(a.drift_after) <= p.max_drift_after_sync
        checks.append(
            Check(
                "clock",
                ok,
                value,
                ""
                if ok
                else f"clock still {a.drift_after:+.1f} s off after sync "
                f"(limit {p.max_drift_after_sync} s)",
            )
        )

    if a.battery is None:
        checks.append(_missing(a, "battery"))
    else:
        pct = _int(a.battery, "percent")
        health = a.battery.get("health", "?")
        value = f"{pct}% ({health})"
        if pct is None:
            checks.append(Check("battery", False, value, "corrupt battery answer"))
        elif pct < p.min_battery:
            checks.append(Check("battery", False, value, f"battery {pct}% < {p.min_battery}%"))
        elif health == "poor":
            checks.append(Check("battery", False, value, "battery health poor: replace it"))
        else:
            checks.append(Check("battery", True, value))

    if a.storage is None:
        checks.append(_missing(a, "storage"))
        checks.append(_missing(a, "offloaded"))
    else:
        free = _int(a.storage, "free")
        errors = _int(a.storage, "errors")
        bitrate = _int(a.storage, "bitrate") or p.default_bitrate
        need = p.longest_slot_seconds * bitrate // 8
        if free is None or errors is None:
            checks.append(Check("storage", False, "?", "corrupt storage answer"))
        elif errors:
            checks.append(
                Check("storage", False, f"{errors} errors", f"storage reports {errors} errors")
            )
        else:
            ok = free >= need
            value = f"{free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed"
            checks.append(
                Check(
                    "storage",
                    ok,
                    value,
                    ""
                    if ok
                    else f"not enough free storage for a {p.longest_slot_seconds // 3600} h "
                    "duty slot",
                )
            )
        pending = _int(a.storage, "pending")
        if pending is None:
            checks.append(Check("offloaded", False, "?", "corrupt storage answer"))
        else:
            ok = pending == 0
            checks.append(
                Check(
                    "offloaded",
                    ok,
                    f"{pending} recordings on the camera",
                    "" if ok else "dock for offload first",
                )
            )

    if a.camera_checks is None:
        checks.append(_missing(a, "camera self-test"))
    else:
        bad = sorted(k for k, v in a.camera_checks.items() if v != "pass")
        value = ", ".join(f"{k} {v}" for k, v in sorted(a.camera_checks.items()))
        checks.append(
            Check(
                "camera self-test", not bad, value, "" if not bad else f"failed: {', '.join(bad)}"
            )
        )

    return Verdict(all(c.ok for c in checks), tuple(checks))
