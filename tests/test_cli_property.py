"""Bad input on the command line, as a property (issue 29 item 5): each command's arguments fed
extreme integers, impossible and far dates, empty, blank, long and non-UTF-8 texts; whatever
comes in, the command ends with 0 or one of the documented exit codes, never a traceback, and
a refusal of the input (64/65/66) changes nothing. In-process (``cli.main``: one run is
milliseconds, so hypothesis can try many) against a real catalog on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camdock import cli
from conftest import make_camera, offload

# 0, and the codes errors.ExitCode documents for an answer to bad input or a refusal:
# usage, data, no input, no user, unavailable, no permission (the rules, recorded), config.
ALLOWED = {0, 64, 65, 66, 67, 69, 77, 78}
INPUT_REFUSED = {64, 65, 66}

INTEGERS = st.sampled_from(
    ["0", "-1", "-60", "-5", "1", "99999999", str(2**63), str(2**70), str(-(2**70)), "1e3", ""]
) | st.integers(min_value=-(2**80), max_value=2**80).map(str)
DATES = st.sampled_from(
    [
        "0001-01-01",
        "9999-12-31",
        "9999-12-31T23:00",
        "2026-02-30",
        "2026-13-01",
        "0000-00-00",
        "2026-11-28",
        "2026-11-28T25:61",
        "",
        "tomorrow",
        "1969-12-31T23:59",
    ]
)
TEXTS = st.sampled_from(["", " ", "\t", "x" * 5000, "王小明", "\u202eA12345", "A12345"]) | (
    st.binary(min_size=1, max_size=8).map(lambda b: b.decode("utf-8", "surrogateescape"))
)

# Each command with its slots: "I" an integer, "D" a date, "T" a text.
COMMANDS: list[list[str]] = [
    ["request", "show", "I"],
    ["request", "new", "--officer", "T", "--from", "D", "--to", "D", "--kind", "view",
     "--reason", "T", "--purpose", "investigation", "--by", "T"],
    ["request", "approve", "T", "--valid-days", "I", "--by", "x"],
    ["request", "deny", "T", "--reason", "T", "--by", "x"],
    ["request", "schedule", "T", "--at", "D", "--minutes", "I", "--by", "x"],
    ["hold", "place", "--recording", "I", "--kind", "complaint", "--case", "T", "--reason", "T",
     "--by", "T"],
    ["hold", "place", "--officer", "T", "--from", "D", "--to", "D", "--kind", "investigation",
     "--case", "c", "--reason", "r", "--by", "x"],
    ["hold", "release", "I", "--reason", "T", "--by", "x"],
    ["retention", "propose", "--recording", "I", "--by", "x"],
    ["retention", "approve", "I", "--by", "x"],
    ["retention", "execute", "--list", "I", "--by", "x"],
    ["register", "export", "--from", "D", "--to", "D"],
    ["audit", "report", "--from", "D", "--to", "D"],
    ["catalog", "export", "--day", "D"],
    ["catalog", "export", "--officer", "T", "--from", "D", "--to", "D"],
    ["offload", "/nonexistent/camera", "--camera", "T", "--officer", "T", "--slot-minutes", "I"],
]  # fmt: skip
SLOTS = {"I": INTEGERS, "D": DATES, "T": TEXTS}


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """One command, each slot filled with an extreme value of its kind."""
    template = draw(st.sampled_from(COMMANDS))
    return [draw(SLOTS[w]) if w in SLOTS else w for w in template]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-property")
    d1, d2, found = root / "d1", root / "d2", root / "c.db"
    d1.mkdir(), d2.mkdir()
    make_camera(root / "cam", 1)
    assert offload(root / "cam", [d1, d2], found).ok
    return found


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(argv=command_lines())
def test_any_argument_is_answered_with_a_documented_exit(
    catalog: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    before = catalog.read_bytes()
    try:
        code = cli.main([*argv, "--catalog", str(catalog)])
    except SystemExit as exc:  # argparse: the usage line, then exit 64
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code in ALLOWED, (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    if code in INPUT_REFUSED:
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("usage:")]
        assert len(lines) == 1, (argv, err)
        assert catalog.read_bytes() == before, argv
