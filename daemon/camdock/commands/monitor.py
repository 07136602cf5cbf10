"""``camdock monitor``: every station's bays and events as they arrive over MQTT, and the
custody heads they carry for ``camdock audit --witness``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from camdock.commands.common import broker_address

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """The ``monitor`` subcommand."""
    m = sub.add_parser("monitor", help="watch every station's bays and events over MQTT")
    m.add_argument("--broker", required=True, metavar="HOST[:PORT]")
    m.add_argument("--station", metavar="ID", help="only this station")
    m.add_argument("--prefix", default="camdock", help="topic prefix (default camdock)")
    m.add_argument("--json", action="store_true", help="one JSON object per message")
    m.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    m.add_argument(
        "--witness",
        type=Path,
        metavar="FILE",
        help="append the custody head of every event seen (camdock audit --witness)",
    )
    m.add_argument("--ca-file", type=Path)
    m.add_argument("--cert-file", type=Path)
    m.add_argument("--key-file", type=Path)
    m.add_argument("--username")
    m.add_argument("--password-file", type=Path)


def run(args: argparse.Namespace) -> int:
    """Watch until the duration is up or the user interrupts."""
    from camdock.config import MqttSettings
    from camdock.services.monitor import MonitorOptions, monitor

    host, port = broker_address(args.broker)
    mqtt = MqttSettings(
        host=host,
        port=port,
        prefix=args.prefix,
        username=args.username,
        password_file=args.password_file,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
    )
    opts = MonitorOptions(mqtt, args.station, args.json, args.duration, args.witness)
    try:
        return asyncio.run(monitor(opts))
    except KeyboardInterrupt:
        return 0
