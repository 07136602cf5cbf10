"""The pre-shift function test's verdict (REG-3.2): a pure function of what the camera answered
and the station's policy, with a reason for every failed check."""

from __future__ import annotations

from dataclasses import dataclass, field

from camdock.model import Battery, Identity, Storage

__all__ = ["Answers", "Check", "Policy", "Verdict", "verdict"]


@dataclass(frozen=True)
class Policy:
    """What a camera must show to go on duty."""

    min_battery: int = 80  # percent
    max_drift_after_sync: float = 2.0  # seconds, after the clock was set
    longest_slot_seconds: int = 8 * 3600  # the longest configured duty slot
    allowed_firmware: tuple[str, ...] = ()  # empty: any
    default_bitrate: int = 8_000_000  # bits/s, when the camera does not say


@dataclass(frozen=True)
class Answers:
    """What the camera said, step by step; ``errors`` holds a step's failure instead."""

    identity: Identity | None = None
    registered: bool | None = None  # None: no registry to check against (camdock selftest)
    drift_before: float | None = None  # camera clock minus station clock, seconds
    drift_after: float | None = None
    battery: Battery | None = None
    storage: Storage | None = None
    camera_checks: dict[str, str] | None = None
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """One check's outcome, with its reason when it failed."""

    name: str
    ok: bool
    value: str
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """Passed only when every check passed."""

    passed: bool
    checks: tuple[Check, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that failed."""
        return tuple(c for c in self.checks if not c.ok)

    def summary(self) -> str:
        """One line: every failed check with its reason."""
        if self.passed:
            return "all checks passed"
        return "; ".join(f"{c.name}: {c.reason}" for c in self.failed)


def _missing(a: Answers, step: str) -> Check:
    return Check(step, False, "-", a.errors.get(step, "camera did not answer"))


def _identity(a: Answers, p: Policy) -> list[Check]:
    if a.identity is None:
        return [_missing(a, "identity")]
    who = f"{a.identity.model} {a.identity.serial or '?'}"
    checks = [
        Check("identity", False, who, "not a registered camera (REG-2)")
        if a.registered is False
        else Check("identity", True, who)
    ]
    fw = a.identity.firmware
    if p.allowed_firmware:
        ok = fw in p.allowed_firmware
        reason = "" if ok else f"firmware {fw or '?'} is not in the allowed list"
        checks.append(Check("firmware", ok, fw, reason))
    return checks


def _clock(a: Answers, p: Policy) -> list[Check]:
    if a.drift_after is None:
        return [_missing(a, "clock")]
    before = "unknown" if a.drift_before is None else f"{a.drift_before:+.1f} s"
    value = f"drift before sync {before}, after {a.drift_after:+.2f} s"
    ok = abs(a.drift_after) <= p.max_drift_after_sync
    reason = (
        ""
        if ok
        else f"clock still {a.drift_after:+.1f} s off after sync (limit {p.max_drift_after_sync} s)"
    )
    return [Check("clock", ok, value, reason)]


def _battery(a: Answers, p: Policy) -> list[Check]:
    if a.battery is None:
        return [_missing(a, "battery")]
    pct, health = a.battery.percent, a.battery.health
    value = f"{pct}% ({health})"
    if pct is None:
        return [Check("battery", False, value, "corrupt battery answer")]
    if pct < p.min_battery:
        return [Check("battery", False, value, f"battery {pct}% < {p.min_battery}%")]
    if health == "poor":
        return [Check("battery", False, value, "battery health poor: replace it")]
    return [Check("battery", True, value)]


def _storage(a: Answers, p: Policy) -> list[Check]:
    if a.storage is None:
        return [_missing(a, "storage"), _missing(a, "offloaded")]
    free, errors, pending = a.storage.free, a.storage.errors, a.storage.pending
    need = p.longest_slot_seconds * (a.storage.bitrate or p.default_bitrate) // 8
    if free is None or errors is None:
        space = Check("storage", False, "?", "corrupt storage answer")
    elif errors:
        space = Check("storage", False, f"{errors} errors", f"storage reports {errors} errors")
    else:
        ok = free >= need
        reason = (
            ""
            if ok
            else f"not enough free storage for a {p.longest_slot_seconds // 3600} h duty slot"
        )
        space = Check(
            "storage", ok, f"{free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed", reason
        )
    if pending is None:
        offloaded = Check("offloaded", False, "?", "corrupt storage answer")
    else:
        ok = pending == 0
        reason = "" if ok else "dock for offload first"
        offloaded = Check("offloaded", ok, f"{pending} recordings on the camera", reason)
    return [space, offloaded]


def _camera_checks(a: Answers, p: Policy) -> list[Check]:
    if a.camera_checks is None:
        return [_missing(a, "camera self-test")]
    bad = sorted(k for k, v in a.camera_checks.items() if v != "pass")
    value = ", ".join(f"{k} {v}" for k, v in sorted(a.camera_checks.items()))
    reason = "" if not bad else f"failed: {', '.join(bad)}"
    return [Check("camera self-test", not bad, value, reason)]


_CHECKS = (_identity, _clock, _battery, _storage, _camera_checks)


def verdict(a: Answers, p: Policy) -> Verdict:
    """The function test's verdict from the camera's answers and the station's policy."""
    checks = [c for step in _CHECKS for c in step(a, p)]
    return Verdict(all(c.ok for c in checks), tuple(checks))
