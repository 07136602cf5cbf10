"""Loaded (through PYTHONPATH) by every Python process that runs under libfaketime in the tests.

Debian bookworm's libfaketime 0.9.10 fakes only the calendar here (FAKETIME_DONT_FAKE_MONOTONIC,
since with a faked monotonic clock every timed lock wait of Python's threads sleeps for the
offset: hours, or days), but its clock_nanosleep still shifts an absolute monotonic deadline by
the offset and answers EINVAL, and time.sleep sleeps that way. A relative wait that no clock
enters, select's, sleeps the same time."""

import os
import select
import time

if os.environ.get("FAKETIME"):

    def _sleep(seconds: float) -> None:
        """time.sleep by a relative timeout (libfaketime does not touch it)."""
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep
