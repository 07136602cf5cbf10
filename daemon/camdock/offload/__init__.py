"""The offload pipeline (REG-4.1.2, REG-4.2.1–4.2.6): one camera volume → N destinations,
verified, filed, catalogued, and only then cleared.

``preflight`` refuses what cannot work before a byte is written, ``engine`` scans, plans,
journals and copies, ``filing`` names, catalogues and clears each verified file, ``recovery``
cleans up after a session whose process died, and ``types`` holds the values they pass: the
request, the planned file, each file's result and the session's report."""

from camdock.offload.engine import ABORT_WAIT, STOP_WAIT, OffloadEngine, ProgressFn
from camdock.offload.types import (
    FileResult,
    FileResults,
    OffloadReport,
    OffloadRequest,
    PlannedFile,
)

__all__ = [
    "ABORT_WAIT",
    "STOP_WAIT",
    "FileResult",
    "FileResults",
    "OffloadEngine",
    "OffloadReport",
    "OffloadRequest",
    "PlannedFile",
    "ProgressFn",
]
