# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The daemon.json model: parse, render, merge, remove, what changed and what the engine needs for it.

Pure functions: nothing here touches the file system, runs a command or talks to Docker. Which keys
and values dockerd accepts is daemon_schema.py; the unit and its flags are systemd_unit.py and
dockerd_flags.py; the I/O around them is daemon_host.py.
"""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import urlsplit

from ansible_collections.fleet.images.plugins.module_utils.url_secrets import mask_url

# Keys dockerd applies on SIGHUP (daemon/reload.go and reload_unix.go, Docker 20.10 to 27).
# `features` is reloaded into the configuration but the features themselves (containerd
# snapshotter, buildkit) are only acted on at start, so it is classified as needing a restart.
RELOADABLE_KEYS = frozenset([
    "allow-nondistributable-artifacts",
    "debug",
    "default-cgroupns-mode",
    "default-ipc-mode",
    "default-runtime",
    "default-shm-size",
    "insecure-registries",
    "labels",
    "live-restore",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "max-download-attempts",
    "network-diagnostic-port",
    "registry-mirrors",
    "runtimes",
    "shutdown-timeout",
])
# The engine version from which daemon.json has a `proxies` object.
PROXIES_KEY_MIN_VERSION = (23, 0)

PROXY_OPTION_KEYS = (("http", "http-proxy"), ("https", "https-proxy"), ("no_proxy", "no-proxy"))


class DaemonJsonError(Exception):
    """A problem with daemon.json or with the requested change; the message says what and where."""


class ParseError(DaemonJsonError):
    def __init__(self, message, line=None, column=None):
        super().__init__(message)
        self.line = line
        self.column = column


# ---------------------------------------------------------------------------------------------
# Reading and writing


# Deeper than any daemon.json dockerd documents (its objects nest three levels); deeper files are
# refused before Python's recursion limit turns them into a traceback.
MAX_DEPTH = 64


def parse_config(text, path="daemon.json"):
    """Parse daemon.json text into a dict; raise ParseError naming the line and column.

    Returns (config, warnings). An empty file is an error: dockerd refuses it ("EOF").
    No message quotes the file's text: it may hold a proxy password.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise ParseError("%s is empty: dockerd refuses an empty daemon.json (it fails with 'EOF'); it must hold at least {}" % path)
    duplicates = []

    def pairs_hook(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    def refuse_constant(name):
        raise ParseError("%s holds %s, which is not JSON (dockerd refuses it)" % (path, name))

    try:
        config = json.loads(text, object_pairs_hook=pairs_hook, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise ParseError(
            "%s is not valid JSON: %s at line %d, column %d (the line is not shown: it may hold a password)" % (path, exc.msg, exc.lineno, exc.colno),
            exc.lineno, exc.colno,
        ) from None
    except RecursionError:
        raise ParseError("%s nests objects or lists too deeply to be read (more than %d levels): it is not a daemon.json dockerd uses"
                         % (path, MAX_DEPTH)) from None
    if not isinstance(config, dict):
        raise ParseError("%s must hold a JSON object ({...}); it holds %s" % (path, _json_kind(config)))
    if nesting_depth(config) > MAX_DEPTH:
        raise ParseError("%s nests objects or lists more than %d levels deep: it is not a daemon.json dockerd uses" % (path, MAX_DEPTH))
    warnings = ["%s sets %s more than once; dockerd uses the last one" % (path, quote(key)) for key in sorted(set(duplicates))]
    return config, warnings


def nesting_depth(value):
    """How deeply objects and lists nest in a JSON value (a scalar is 0), without recursion."""
    deepest = 0
    pending = [(value, 1)] if isinstance(value, (dict, list)) else []
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        for item in (node.values() if isinstance(node, dict) else node):
            if isinstance(item, (dict, list)):
                pending.append((item, depth + 1))
    return deepest


def _json_kind(value):
    """The JSON type of a value without quoting it (a top-level string may be anything)."""
    return "a string" if isinstance(value, str) else json_type(value)


def render_config(config):
    """The file content written for `config`: two-space indented JSON and a final newline."""
    return json.dumps(config, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Merging and removing


LIST_MERGE_MODES = ("replace", "append_unique")


def _list_identity(key):
    """How two list items of `key` are compared when appending without duplicates."""
    if key == "registry-mirrors":
        return lambda item: normalize_mirror(item) if isinstance(item, str) else json.dumps(item, sort_keys=True)
    if key == "insecure-registries":
        return lambda item: item.lower() if isinstance(item, str) else json.dumps(item, sort_keys=True)
    return lambda item: json.dumps(item, sort_keys=True)


def merge(base, overlay, list_merge="replace"):
    """Deep-merge `overlay` into a copy of `base`: objects merge key by key, lists combine by
    `list_merge` (replace, or append_unique keeping base's order), everything else is replaced."""
    if list_merge not in LIST_MERGE_MODES:
        raise DaemonJsonError("list_merge must be one of %s, not %r" % (", ".join(LIST_MERGE_MODES), list_merge))
    result = copy.deepcopy(base)
    for key, value in overlay.items():
        current = result.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            result[key] = merge(current, value, list_merge)
        elif isinstance(value, list) and isinstance(current, list) and list_merge == "append_unique":
            identity = _list_identity(key)
            known = set(identity(item) for item in current)
            combined = list(current)
            for item in value:
                if identity(item) not in known:
                    known.add(identity(item))
                    combined.append(copy.deepcopy(item))
            result[key] = combined
        else:
            result[key] = copy.deepcopy(value)
    return result


def resolve_path(config, dotted):
    """Find the key chain a dotted path names, preferring the longest key that exists at each
    level (daemon.json keys can hold dots: default-network-opts.bridge.com.docker.network.driver.mtu).
    Returns the list of keys, or None when the path does not exist."""
    parts = dotted.split(".")
    chain = []
    node = config
    while parts:
        if not isinstance(node, dict):
            return None
        for size in range(len(parts), 0, -1):
            candidate = ".".join(parts[:size])
            if candidate in node:
                chain.append(candidate)
                node = node[candidate]
                parts = parts[size:]
                break
        else:
            return None
    return chain


def remove_paths(config, paths):
    """Return (a copy of config without the given dotted paths, the paths that were present).
    Objects left empty by a nested removal are kept: their owner may expect them."""
    result = copy.deepcopy(config)
    removed = []
    for dotted in paths:
        chain = resolve_path(result, dotted)
        if chain is None:
            continue
        node = result
        for key in chain[:-1]:
            node = node[key]
        del node[chain[-1]]
        removed.append(dotted)
    return result, removed


def quote(key):
    return "'%s'" % key


def json_type(value):
    """The JSON type of a value for a message; a string is shown, its URL password masked."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "the string %s" % json.dumps(mask_url(value))
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def normalize_mirror(value):
    """The form dockerd keeps a mirror in (and `docker info` shows): lower-case scheme and host, one trailing '/'."""
    try:
        parts = urlsplit(value)
        netloc = parts.netloc.lower()
        return "%s://%s/" % (parts.scheme.lower(), netloc)
    except ValueError:
        return value


def format_version(version):
    return ".".join(str(part) for part in version) if version else "unknown"


def parse_version(text):
    """(major, minor, patch) from '20.10.24+dfsg1', 'Docker version 26.1.5+dfsg1, build a72d7cd' or None."""
    if not text:
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    return tuple(int(part) for part in match.groups(default="0"))

# ---------------------------------------------------------------------------------------------
# What changed, and what the engine needs to pick it up


def changed_keys(before, after):
    """Top-level keys whose value differs (added, removed or changed), sorted."""
    return sorted(key for key in set(before) | set(after) if before.get(key, _MISSING) != after.get(key, _MISSING))


_MISSING = object()


def classify(keys, extra_restart=()):
    """('none' | 'reload' | 'restart', {'reload': [...], 'restart': [...]}) for changed keys."""
    reload_keys = sorted(key for key in keys if key in RELOADABLE_KEYS)
    restart_keys = sorted(set(key for key in keys if key not in RELOADABLE_KEYS) | set(extra_restart))
    if restart_keys:
        needs = "restart"
    elif reload_keys:
        needs = "reload"
    else:
        needs = "none"
    return needs, {"reload": reload_keys, "restart": restart_keys}


# ---------------------------------------------------------------------------------------------
# Proxies


def proxies_from_option(option):
    """daemon.json's `proxies` object from the module's proxies option (http, https, no_proxy)."""
    result = {}
    for option_key, json_key in PROXY_OPTION_KEYS:
        value = (option or {}).get(option_key)
        if value is not None and value != "":
            result[json_key] = value
    return result


def proxies_supported(version):
    return version is not None and tuple(version[:2]) >= PROXIES_KEY_MIN_VERSION
