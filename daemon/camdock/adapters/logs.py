"""Where log lines go: to a terminal with their time, or to journald with their priority.

Under systemd, stderr is a stream to journald, which stamps every line itself: a second
timestamp is noise, and a plain line gets the unit's default priority, so ``journalctl -p
warning`` would find nothing. systemd says how to tell (systemd.exec(5), ``$JOURNAL_STREAM``:
the ``device:inode`` of the stream, to compare with stderr's own) and how to give a line its
priority (sd-daemon(3): a ``<N>`` prefix, syslog's numbers, read by journald because the unit
keeps ``SyslogLevelPrefix=yes``, the default). Each line of a multi-line record (a traceback)
carries the prefix: journald reads the stream line by line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

__all__ = ["PRIORITY", "QUIET", "JournalFormatter", "setup", "stream_is_journal"]

# syslog(3) priorities for Python's levels (sd-daemon(3): SD_ERR "<3>", SD_WARNING "<4>", …).
PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
# Libraries that say INFO about their own work on every call (WeasyPrint per PDF, fontTools
# per subset font): only their warnings reach the station's log.
QUIET = ("weasyprint", "fontTools", "uvicorn.access")


def _priority(levelno: int) -> int:
    for level, priority in sorted(PRIORITY.items(), reverse=True):
        if levelno >= level:
            return priority
    return 7


def stream_is_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether ``stream`` is the journal stream systemd connected (``$JOURNAL_STREAM`` names its
    ``device:inode``; a shell started from the unit inherits the variable but not the stream)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):  # no fileno (a test's StringIO), or garbage
        return False


class JournalFormatter(logging.Formatter):
    """``<N>name: message`` on every line; journald adds the time, the unit and the pid."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record with its syslog priority before each of its lines."""
        prefix = f"<{_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def setup(verbose: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Log to ``stream`` (stderr): journald's form under systemd, else with timestamps."""
    out = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(out)
    if stream_is_journal(out):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):  # one setup per process: a second call replaces the first
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
