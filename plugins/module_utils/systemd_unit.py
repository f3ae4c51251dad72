# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's systemd unit and the proxy drop-in: one reader of `[Service]` and `Environment=`.

Pure functions: parse what `systemctl cat` prints (the unit and its drop-ins), expand ExecStart as
systemd does, and render or read back the drop-in that carries dockerd's proxies on engines before
Docker 23.
"""

from __future__ import annotations

import re
import shlex
from collections import namedtuple


def _unquote_env(value):
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def parse_environment_file(text):
    """KEY=value pairs of a systemd EnvironmentFile (comments, blank lines and `export` ignored)."""
    env = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        if "=" not in line:
            continue
        name, value = line.split("=", 1)
        env[name.strip()] = _unquote_env(value)
    return env


def _logical_lines(text):
    """Join systemd continuation lines (a trailing backslash)."""
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\") and not line.lstrip().startswith(("#", ";")):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


_FILE_HEADER = re.compile(r"^# (/\S+)$")

UnitInfo = namedtuple("UnitInfo", "exec_start exec_start_file environment environment_files exec_reload files")


class UnitError(ValueError):
    """A unit line that cannot be read; the message names it."""


def environment_words(value):
    """The NAME=value assignments of one Environment= line, quotes honoured and %% unescaped (systemd specifiers)."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    return dict(word.replace("%%", "%").split("=", 1) for word in words if "=" in word)


def _files_and_lines(text, default_file):
    """(file, line) for every logical line of what `systemctl cat` prints, where each file follows a '# /path' line."""
    current_file, seen_file, previous_blank = default_file, False, True
    for line in _logical_lines(text):
        stripped = line.strip()
        header = _FILE_HEADER.match(stripped)
        if header and (previous_blank or not seen_file):
            current_file, seen_file, previous_blank = header.group(1), True, False
            yield current_file, None
            continue
        previous_blank = not stripped
        yield current_file, stripped


def _service_assignments(text, default_file):
    """(file, name, value) of every assignment in a [Service] section, and the files read."""
    files, assignments, section = [], [], None
    for current_file, line in _files_and_lines(text, default_file):
        if line is None:
            files.append(current_file)
            section = None
        elif line and not line.startswith(("#", ";")):
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif section == "Service" and "=" in line:
                name, value = line.split("=", 1)
                assignments.append((current_file, name.strip(), value.strip()))
    if default_file and not files:
        files.append(default_file)
    return files, assignments


def parse_unit(text, default_file=None):
    """Read the concatenated unit and drop-ins that `systemctl cat` prints (each file after a
    '# /path' line) into what matters here: the effective ExecStart and the file that set it,
    Environment= assignments, EnvironmentFile= paths (path, optional) and whether ExecReload is set.
    An empty assignment resets what came before, as in systemd."""
    files, assignments = _service_assignments(text, default_file)
    exec_start, exec_start_file, exec_reload, environment, environment_files = None, default_file, False, {}, []
    for current_file, name, value in assignments:
        if name == "ExecStart":
            exec_start, exec_start_file = value or None, current_file
        elif name == "ExecReload":
            exec_reload = bool(value)
        elif name == "Environment":
            environment = dict(environment, **environment_words(value)) if value else {}
        elif name == "EnvironmentFile":
            environment_files = environment_files + [(value.lstrip("-"), value.startswith("-"))] if value else []
    return UnitInfo(exec_start, exec_start_file, environment, environment_files, exec_reload, files)


_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand_exec_start(exec_start, environment):
    """The argv systemd builds from ExecStart: prefixes dropped, quotes honoured, a lone $VAR split
    into words and ${VAR} (or $VAR inside a word) substituted as is."""
    command = exec_start.lstrip("@-:+!")
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UnitError("cannot read ExecStart=%s: %s" % (exec_start, exc)) from exc
    argv = []
    for word in words:
        lone = re.match(r"^\$(\w+)$", word)
        if lone:
            argv.extend(environment.get(lone.group(1), "").split())
            continue
        argv.append(_VARIABLE.sub(lambda match: environment.get(match.group(1) or match.group(2), ""), word))
    return argv


# ---------------------------------------------------------------------------------------------
# The drop-in that gives dockerd its proxies on engines without daemon.json `proxies`: Docker
# Engine before 23.0 reads them only from its environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY).

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
    environment = parse_unit(text).environment
    found = {}
    for key, variable in ENVIRONMENT_NAMES:
        for name in (variable.lower(), variable):
            if name in environment:
                found[key] = environment[name]
    return found


def is_managed(text):
    """Whether this collection wrote the drop-in (so it may remove it)."""
    return text.startswith(MARKER)
