"""Small helpers shared by the lab's parts: progress lines, commands, errors."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager

STATE_DIR = "/var/lib/fleet-lab"
CACHE_DIR = "/var/cache/fleet-lab"
DOCKER_SOCKET = "unix:///var/run/docker.sock"


class LabError(Exception):
    """A lab step failed; the message names the step and what to look at."""


def say(message):
    print("lab: %s" % message, flush=True)


@contextmanager
def timed(what):
    start = time.monotonic()
    yield
    say("%s (%.1fs)" % (what, time.monotonic() - start))


def run(command, what, **kwargs):
    """Run a command; on failure raise LabError with its last output lines."""
    proc = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise LabError("%s failed (exit %d): %s\n%s" % (what, proc.returncode, " ".join(command), tail))
    return proc.stdout


def die(message):
    print("lab: error: %s" % message, file=sys.stderr, flush=True)
    sys.exit(1)
