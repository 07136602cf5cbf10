"""``camdock selftest``: the pre-shift function test (REG-3.2) the bay button runs, on a camera
connected to any machine."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from camdock.commands.common import load_or_report
from camdock.errors import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """The ``selftest`` subcommand."""
    t = sub.add_parser("selftest", help="run the pre-shift function test on a camera (REG-3.2)")
    t.add_argument("--port", required=True, metavar="TTY", help="the camera's serial port")
    t.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="check the camera against this station's registry and policy",
    )
    t.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    """The same test the bay button runs, on a camera connected to any machine."""
    from camdock.camera.driver import driver_for
    from camdock.core.selftest import Policy
    from camdock.services.selftest import run_function_test
    from camdock.station.preshift import policy_for

    policy, registered = Policy(), None
    if args.config is not None:
        cfg = load_or_report(args.config)
        if cfg is None:
            return ExitCode.CONFIG
        policy = policy_for(cfg)
        registered = cfg.cameras.__contains__

    port = Path(args.port)
    if not port.exists():  # one clear line and 69, not six repeated errors and 1 (issue 29)
        print(f"camdock selftest: no camera at {port}: is it plugged in?", file=sys.stderr)
        return ExitCode.UNAVAILABLE

    async def main() -> int:
        driver = driver_for(args.port)
        try:
            answers, verdict = await run_function_test(driver, policy, registered)
        finally:
            driver.close()
        if args.json:
            print(
                json.dumps(
                    {
                        "port": args.port,
                        "passed": verdict.passed,
                        "identity": asdict(answers.identity) if answers.identity else None,
                        "drift_before": answers.drift_before,
                        "drift_after": answers.drift_after,
                        "checks": [c.__dict__ for c in verdict.checks],
                    },
                    ensure_ascii=False,
                    indent=2,
                )
            )
        else:
            for c in verdict.checks:
                print(
                    f"{'ok  ' if c.ok else 'FAIL'} {c.name:<17} {c.value}"
                    + (f"  — {c.reason}" if c.reason else "")
                )
            print("PASSED" if verdict.passed else "FAILED: " + verdict.summary())
        return 0 if verdict.passed else 1

    return asyncio.run(main())
