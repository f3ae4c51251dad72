# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The systemd drop-in that gives dockerd its proxies on engines without daemon.json `proxies`.

Docker Engine before 23.0 reads proxies only from its environment (HTTP_PROXY, HTTPS_PROXY,
NO_PROXY), so they go into docker.service.d/http-proxy.conf. Pure functions: render the file,
read one back, tell whether this collection wrote it.
"""

from __future__ import annotations

import shlex

MARKER = "# Managed by fleet.images.daemon_config"

ENVIRONMENT_NAMES = (("http-proxy", "HTTP_PROXY"), ("https-proxy", "HTTPS_PROXY"), ("no-proxy", "NO_PROXY"))


def _systemd_quote(value):
    """A double-quoted Environment= word: backslash and quote escaped, % doubled (systemd specifiers)."""
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def render_proxy_dropin(proxies):
    """The drop-in text for a daemon.json-style proxies dict (http-proxy, https-proxy, no-proxy)."""
    lines = [
        MARKER + ": the Docker Engine's proxies.",
        "# Docker Engine before 23.0 reads them only from its environment. A change needs",
        "# `systemctl daemon-reload` and a restart of docker.service.",
        "[Service]",
    ]
    for key, name in ENVIRONMENT_NAMES:
        if proxies.get(key):
            lines.append("Environment=%s" % _systemd_quote("%s=%s" % (name, proxies[key])))
    return "\n".join(lines) + "\n"


def parse_proxy_dropin(text):
    """The proxies a drop-in sets, as a daemon.json-style dict (upper- or lower-case variables)."""
    found = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if section != "Service" or not line.startswith("Environment="):
            continue
        try:
            words = shlex.split(line[len("Environment="):])
        except ValueError:
            continue
        for word in words:
            name, dummy, value = word.partition("=")
            for key, variable in ENVIRONMENT_NAMES:
                if name in (variable, variable.lower()):
                    found[key] = value.replace("%%", "%")
    return found


def is_managed(text):
    """Whether this collection wrote the drop-in (so it may remove it)."""
    return text.startswith(MARKER)
