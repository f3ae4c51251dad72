"""Loopback ports for registries the tests start (importable from every test directory)."""

from __future__ import annotations

import socket


def free_port():
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
