"""The station's settings as frozen dataclasses. Defaults are declared here, once: the parsers
read them from these classes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import tzinfo
from pathlib import Path

from camdock.core.access import Person, Role
from camdock.core.naming import DutySlots
from camdock.core.retention import Policy
from camdock.core.roster import Registry, Roster
from camdock.events import Topics
from camdock.model import Bay, Camera, Drive, Officer

__all__ = ["Config", "MqttSettings", "SealSettings", "SelfTestSettings", "StationSettings"]


@dataclass(frozen=True)
class StationSettings:
    """Defaults of ``[station]``."""

    timezone: str = "Asia/Taipei"
    state_dir: str = "/var/lib/camdock"
    run_dir: str = "/run/camdock"
    max_concurrent_offloads: int = 4
    pin_factory: str = "lgpio"
    slot_minutes: int = 240  # duty slots when the config gives none


@dataclass(frozen=True)
class MqttSettings:
    """``[mqtt]``: the broker, TLS and credentials, and the outbox's bounds."""

    host: str
    port: int = 1883
    prefix: str = "camdock"
    client_id: str | None = None
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = 30
    protocol: str = "5"  # or "3.1.1"; with "5", a broker that hangs up on CONNECT gets 3.1.1
    # Brokers tried in turn (``hosts``): (host, port) each; empty means ``host``/``port`` alone.
    hosts: tuple[tuple[str, int], ...] = ()
    outbox_limit: int = 100_000  # undelivered events; beyond it the station takes no new offloads
    retention_days: int = 30  # delivered events are pruned after this

    TLS_PORT = 8883

    def brokers(self) -> tuple[tuple[str, int], ...]:
        """Every broker to try, in order: ``hosts``, else ``host`` and ``port``."""
        return self.hosts or ((self.host, self.port),)


@dataclass(frozen=True)
class SelfTestSettings:
    """``[selftest]``: the pre-shift function test (REG-3.2)."""

    min_battery: int = 80
    max_drift_after_sync: float = 2.0
    allowed_firmware: tuple[str, ...] = ()
    spare_max_age_hours: float = 12.0  # a spare must have passed its own test this recently


@dataclass(frozen=True)
class SealSettings:
    """``[seal]``: the daily encrypted archive (REG-4.2.5). The password is never here: it is
    the systemd credential ``credential`` ($CREDENTIALS_DIRECTORY) or the root-only
    ``password_file``."""

    key_id: str = "1"  # recorded with each seal, so keys can rotate
    credential: str = "camdock-seal"
    password_file: Path | None = None
    # A root-only folder of ``<key id>.key`` files: the passwords of earlier keys, for days
    # sealed before a rotation (read, verified, copied out; never sealed with).
    key_dir: Path | None = None
    sealed_by: str | None = None  # the custodian the daemon's own seals name
    alarm_after_days: int = 2  # a day unsealed or unconfirmed this long after it ended: alarm
    automatic: bool = True  # the daemon seals each past duty day once its bays are idle
    # Days after a day's seal is confirmed that its plain files are removed (0: at once); None:
    # the plain files stay beside the archives.
    keep_plain_days: int | None = None


@dataclass(frozen=True)
class ConsoleSettings:
    """``[console]``: how long a console session lives (issue 27). Idle: since the last request
    the staff member made; absolute: since the login, whatever they did."""

    idle_minutes: int = 15
    absolute_hours: int = 8  # a shift; then log in again


@dataclass(frozen=True)
class Config:
    """A validated station configuration."""

    station_id: str
    unit: str
    tz: tzinfo
    state_dir: Path
    run_dir: Path
    drives: tuple[Drive, ...]  # footage, backup (REG-4.2.1, REG-4.2.6)
    slots: DutySlots
    max_concurrent_offloads: int
    pin_factory: str
    bays: tuple[Bay, ...]
    cameras: dict[str, Camera]  # by USB serial
    officers: dict[str, Officer]  # by badge
    mqtt: MqttSettings | None = None  # None: events stay in the outbox
    camera_usb_ids: tuple[str, ...] = ()  # "vendor:product" of the camera models (udev rules)
    selftest: SelfTestSettings = field(default_factory=SelfTestSettings)
    retention: Policy = field(default_factory=Policy)  # REG-4.3.1
    seal: SealSettings = field(default_factory=SealSettings)  # REG-4.2.5
    # Offloads at once on one USB bus (0: no limit): 1 on a Pi 4, whose USB 2.0 ports share one
    # bus, so the officers waiting are served shortest-first instead of all sharing the bus.
    offloads_per_bus: int = 0
    scrub_days: int = 30  # [scrub] days: every stored copy read back again within this (REG-7.2)
    chain_key_file: Path | None = None  # [custody] key_file (None: <state_dir>/chain.key)
    # [access] draft_days: an unsubmitted request expires after this and holds no footage.
    draft_days: int = 7
    staff: dict[str, Person] = field(default_factory=dict)  # by id (officers by badge)
    password_hashes: dict[str, str] = field(default_factory=dict, repr=False)  # the console's
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    # False only on a development machine: destinations are then plain directories, and
    # --clear after copies on one filesystem is allowed (said loudly at start-up).
    require_mounts: bool = True
    source: str = field(default="<memory>", compare=False)

    @property
    def footage(self) -> Path:
        """The footage drive's root."""
        return self.drives[0].root

    @property
    def backup(self) -> Path:
        """The backup drive's root."""
        return self.drives[1].root

    @property
    def catalog(self) -> Path:
        """The catalog database."""
        return self.state_dir / "catalog.sqlite"

    @property
    def chain_key(self) -> Path:
        """The station's chain key (catalog/chainkey): never in the catalog."""
        return self.chain_key_file or self.state_dir / "chain.key"

    def bay_for(self, port: str | None, id_path: str | None) -> Bay | None:
        """The bay that owns a USB port, if any."""
        return next((b for b in self.bays if b.owns(port, id_path)), None)

    @property
    def topics(self) -> Topics:
        """The station's MQTT topics (events are recorded with them even without a broker)."""
        return Topics(self.mqtt.prefix if self.mqtt else "camdock", self.station_id)

    @property
    def has_roles(self) -> bool:
        """Whether the config names staff beyond its officers: then every manual action is
        checked against the person's roles (REG-4.1.1)."""
        return any(p.roles - {Role.OFFICER} for p in self.staff.values())

    def officer_for(self, camera: Camera) -> Officer | None:
        """The officer the camera is assigned to, if any."""
        return self.officers.get(camera.officer) if camera.officer else None

    def roster_registry(self) -> Registry:
        """What a roster from the station server is checked against."""
        return Registry(
            self.unit, frozenset(self.officers), frozenset(c.id for c in self.cameras.values())
        )

    def with_roster(self, roster: Roster) -> Config:
        """This configuration with the roster's assignments, officers and slots in force."""
        officers = {**self.officers, **{o.badge: o for o in roster.officers}}
        by_id = {c.id: c for c in self.cameras.values()}
        cameras = dict(self.cameras)
        for camera_id, badge in roster.assignments.items():
            cam = by_id[camera_id]
            cameras[cam.serial] = replace(cam, officer=badge)
        # The staff stays the config's: a roster's officers are not staff, and the roles it
        # grants last its duty day (the catalog's roster_roles), never the daemon's lifetime.
        return replace(self, officers=officers, cameras=cameras,
                       slots=roster.slots or self.slots)  # fmt: skip
