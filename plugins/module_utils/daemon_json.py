# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic for /etc/docker/daemon.json: parse, merge, remove, validate, classify, render.

Nothing here touches the file system, runs a command or talks to Docker, so all of it is
unit-tested without an engine. plugins/modules/daemon_config.py does the I/O around it.

The rules follow what dockerd itself does when it reads the file (daemon/config in moby):
unknown keys are refused, a key set both in the file and as a command-line flag is refused,
nested objects other than a few "flat" ones are flattened before both checks, and SIGHUP
reloads only a fixed set of keys.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import json
import re
import shlex
from collections import namedtuple
from urllib.parse import unquote, urlsplit

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

# Objects dockerd keeps whole; every other nested object is flattened into its keys before
# the unknown-key and flag-conflict checks (configValuesSet in daemon/config/config.go).
FLAT_OPTIONS = frozenset(["builder", "cluster-store-opts", "default-network-opts", "default-ulimits", "features", "log-opts", "runtimes"])
# Keys that may be given both as a flag and in the file (dockerd merges them).
SKIP_DUPLICATE_CHECK = frozenset(["runtimes"])

# Keys only some engine generations accept: (first version, version it was removed in or None).
KEY_VERSIONS = {
    "proxies": ((23, 0), None),
    "cluster-store": ((0, 0), (23, 0)),
    "cluster-advertise": ((0, 0), (23, 0)),
    "cluster-store-opts": ((0, 0), (23, 0)),
}

# The engine version from which daemon.json has a `proxies` object.
PROXIES_KEY_MIN_VERSION = (23, 0)

PROXY_OPTION_KEYS = (("http", "http-proxy"), ("https", "https-proxy"), ("no_proxy", "no-proxy"))

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")

DOCKERD_BINARY_NAMES = ("dockerd",)


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
    warnings = ["%s sets %s more than once; dockerd uses the last one" % (path, _quote(key)) for key in sorted(set(duplicates))]
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
    return "a string" if isinstance(value, str) else _json_type(value)


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


# ---------------------------------------------------------------------------------------------
# Value checks


def _json_type(value):
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


def _quote(key):
    return "'%s'" % key


def check_bool(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        return "must be a JSON boolean (true or false without quotes), not %s: Docker 23 and later refuse quoted booleans" % _json_type(value)
    return "must be a JSON boolean (true or false), not %s" % _json_type(value)


def _check_int(value, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (without quotes)" if isinstance(value, str) and value.strip().lstrip("-").isdigit() else ""
        return "must be a whole JSON number%s, not %s" % (hint, _json_type(value))
    if minimum is not None and value < minimum:
        return "must be %d or more, not %d" % (minimum, value)
    if maximum is not None and value > maximum:
        return "must be %d or less, not %d" % (maximum, value)
    return None


def check_int(value):
    return _check_int(value)


def check_non_negative_int(value):
    return _check_int(value, minimum=0)


def check_port(value):
    return _check_int(value, minimum=0, maximum=65535)


def check_str(value):
    if isinstance(value, str):
        return None
    return "must be a JSON string, not %s" % _json_type(value)


def _check_choice(choices):
    def check(value):
        problem = check_str(value)
        if problem:
            return problem
        if value not in choices:
            return "must be one of %s, not %s" % (", ".join(choices), json.dumps(value))
        return None
    return check


def check_absolute_path(value):
    problem = check_str(value)
    if problem:
        return problem
    if not value.startswith("/"):
        return "must be an absolute path, not %s" % json.dumps(value)
    return None


def check_ip(value):
    problem = check_str(value)
    if problem:
        return problem
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be an IP address, not %s" % json.dumps(value)
    return None


def check_cidr(value):
    problem = check_str(value)
    if problem:
        return problem
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return "must be an address with a prefix length such as 172.31.0.1/16, not %s" % json.dumps(value)
    if "/" not in value:
        return "must carry a prefix length such as /16, not %s" % json.dumps(value)
    return None


def check_size(value):
    problem = check_str(value)
    if problem:
        return problem
    if not re.match(r"^\d+(\.\d+)?\s*([kKmMgGtTpP]i?[bB]?|[bB])?$", value.strip()):
        return "must be a size such as 64M or 1G, not %s" % json.dumps(value)
    return None


def _check_list(item_check):
    def check(value):
        if not isinstance(value, list):
            return "must be a JSON list, not %s" % _json_type(value)
        for index, item in enumerate(value):
            problem = item_check(item)
            if problem:
                return "item %d %s" % (index + 1, problem)
        return None
    return check


def _check_object(value_check=None):
    def check(value):
        if not isinstance(value, dict):
            return "must be a JSON object, not %s" % _json_type(value)
        if value_check is not None:
            for name, item in value.items():
                problem = value_check(item)
                if problem:
                    return "entry %s %s" % (json.dumps(name), problem)
        return None
    return check


def check_mirror(value):
    """A registry mirror: http(s)://host[:port] with no path beyond '/', no query, no credentials."""
    problem = check_str(value)
    if problem:
        return problem
    if "://" not in value:
        return "%s has no scheme: write it as https://%s (or http:// for a plain-HTTP mirror)" % (json.dumps(value), value.rstrip("/"))
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        return "%s is not a valid URL: %s" % (json.dumps(value), exc)
    try:
        port = parts.port
    except ValueError:
        return "%s has a port that is not a number from 1 to 65535" % json.dumps(value)
    if parts.scheme not in ("http", "https"):
        return "%s uses the scheme %s: a mirror must be http:// or https://" % (json.dumps(value), parts.scheme or "(none)")
    if not parts.hostname:
        return "%s names no host" % json.dumps(value)
    if parts.username is not None or parts.password is not None:
        return "%s carries credentials: dockerd refuses them in a mirror URL (use docker login)" % json.dumps(mask_url(value))
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "%s has a path, query or fragment: a mirror is only scheme://host[:port] (dockerd refuses anything after it)" % json.dumps(value)
    problem = _check_hostname(parts.hostname, value)
    if problem:
        return problem
    if port is not None and not 0 < port < 65536:
        return "%s has port %d outside 1-65535" % (json.dumps(value), port)
    return None


def normalize_mirror(value):
    """The form dockerd keeps a mirror in (and `docker info` shows): lower-case scheme and host, one trailing '/'."""
    try:
        parts = urlsplit(value)
        netloc = parts.netloc.lower()
        return "%s://%s/" % (parts.scheme.lower(), netloc)
    except ValueError:
        return value


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _check_hostname(hostname, original):
    try:
        ipaddress.ip_address(hostname)
        return None
    except ValueError:
        pass
    if len(hostname) > 253 or not all(_HOST_LABEL.match(label) for label in hostname.rstrip(".").split(".")):
        return "%s names an invalid host %s" % (json.dumps(original), json.dumps(hostname))
    return None


def check_insecure_registry(value):
    """An insecure registry: host[:port] (IPv6 in brackets) or a CIDR range, without a scheme."""
    problem = check_str(value)
    if problem:
        return problem
    if "://" in value:
        return "%s has a scheme: write an insecure registry as host:port or as a CIDR range (for example %s)" % (
            json.dumps(value), value.split("://", 1)[1].rstrip("/"))
    if "/" in value:
        try:
            ipaddress.ip_network(value, strict=False)
            return None
        except ValueError:
            return "%s is neither host[:port] nor a CIDR range such as 10.0.0.0/8" % json.dumps(value)
    try:
        parts = urlsplit("//" + value)
        port = parts.port
    except ValueError:
        return "%s is not host[:port]: the port must be a number from 1 to 65535" % json.dumps(value)
    if not parts.hostname or parts.username is not None or parts.path or parts.query or parts.fragment:
        return "%s is not host[:port]" % json.dumps(value)
    if port is not None and not 0 < port < 65536:
        return "%s has port %d outside 1-65535" % (json.dumps(value), port)
    return _check_hostname(parts.hostname, value)


def check_proxy_url(value):
    problem = check_str(value)
    if problem:
        return problem
    if value == "":
        return None
    if "://" not in value:
        return "%s has no scheme: write it as http://%s" % (json.dumps(mask_url(value)), mask_url(value))
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        return "%s is not a valid URL: %s" % (json.dumps(mask_url(value)), exc)
    try:
        port = parts.port
    except ValueError:
        return ("%s has a port that is not a number from 1 to 65535 (a '/', '?' or '#' inside a password must be "
                "percent-encoded: %%2F, %%3F, %%23)" % json.dumps(mask_url(value)))
    if parts.scheme not in ("http", "https", "socks5", "socks5h"):
        return "%s uses the scheme %s: a proxy is http://, https://, socks5:// or socks5h://" % (json.dumps(mask_url(value)), parts.scheme)
    if not parts.hostname:
        return "%s names no host" % json.dumps(mask_url(value))
    if port is not None and not 0 < port < 65536:
        return "%s has port %d outside 1-65535" % (json.dumps(mask_url(value)), port)
    return None


def check_no_proxy(value):
    problem = check_str(value)
    if problem:
        return problem
    if any(char.isspace() for char in value.replace(", ", ",")):
        return "%s must be a comma-separated list without spaces inside its entries" % json.dumps(value)
    return None


def check_proxies(value):
    if not isinstance(value, dict):
        return "must be a JSON object with http-proxy, https-proxy and no-proxy, not %s" % _json_type(value)
    checks = {"http-proxy": check_proxy_url, "https-proxy": check_proxy_url, "no-proxy": check_no_proxy}
    for name, item in value.items():
        if name not in checks:
            return "has the unknown entry %s (known: http-proxy, https-proxy, no-proxy)" % json.dumps(name)
        problem = checks[name](item)
        if problem:
            return "entry %s %s" % (json.dumps(name), problem)
    return None


def check_label(value):
    problem = check_str(value)
    if problem:
        return problem
    if "=" not in value or value.startswith("="):
        return "%s must be key=value" % json.dumps(value)
    return None


def check_labels(value):
    problem = _check_list(check_label)(value)
    if problem:
        return problem
    seen = {}
    for label in value:
        name, dummy, content = label.partition("=")
        if name in seen and seen[name] != content:
            return "sets %s twice with different values (%s and %s): dockerd refuses conflicting labels" % (
                json.dumps(name), json.dumps(seen[name]), json.dumps(content))
        seen[name] = content
    return None


_DOMAIN = re.compile(r"^(?=.*[A-Za-z])([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])(\.([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]))*\.?$")


def check_search_domain(value):
    problem = check_str(value)
    if problem:
        return problem
    if value.strip() == "." or (_DOMAIN.match(value.strip()) and len(value.strip()) < 255):
        return None
    return "%s is not a valid domain" % json.dumps(value)


def check_address_pool(value):
    if not isinstance(value, dict):
        return "must be an object {\"base\": \"10.10.0.0/16\", \"size\": 24}, not %s" % _json_type(value)
    problem = check_cidr(value.get("base"))
    if problem:
        return "base %s" % problem
    problem = _check_int(value.get("size"), minimum=1, maximum=128)
    if problem:
        return "size %s" % problem
    return None


def check_ulimit(value):
    if not isinstance(value, dict):
        return "must be an object {\"Name\": \"nofile\", \"Hard\": 64000, \"Soft\": 64000}, not %s" % _json_type(value)
    for limit in ("Hard", "Soft"):
        if limit in value:
            problem = check_int(value[limit])
            if problem:
                return "%s %s" % (limit, problem)
    return None


def check_runtime(value):
    if not isinstance(value, dict):
        return "must be an object such as {\"path\": \"/usr/bin/runsc\"}, not %s" % _json_type(value)
    if "path" in value and check_str(value["path"]):
        return "path %s" % check_str(value["path"])
    if "runtimeArgs" in value and _check_list(check_str)(value["runtimeArgs"]):
        return "runtimeArgs %s" % _check_list(check_str)(value["runtimeArgs"])
    return None


def check_any_object(value):
    return _check_object()(value)


LIST_OF_STR = _check_list(check_str)
MAP_OF_STR = _check_object(check_str)

# Value checks for the keys dockerd knows on Linux (Docker 20.10 to 27). A key not listed here
# is unknown: dockerd refuses unknown keys at start.
KNOWN_KEYS = {
    "allow-nondistributable-artifacts": LIST_OF_STR,
    "api-cors-header": check_str,
    "authorization-plugins": LIST_OF_STR,
    "bip": check_cidr,
    "bridge": check_str,
    "builder": check_any_object,
    "cdi-spec-dirs": LIST_OF_STR,
    "cgroup-parent": check_str,
    "cluster-advertise": check_str,
    "cluster-store": check_str,
    "cluster-store-opts": MAP_OF_STR,
    "containerd": check_str,
    "containerd-namespace": check_str,
    "containerd-plugins-namespace": check_str,
    "cpu-rt-period": check_int,
    "cpu-rt-runtime": check_int,
    "data-root": check_absolute_path,
    "debug": check_bool,
    "default-address-pools": _check_list(check_address_pool),
    "default-cgroupns-mode": _check_choice(("host", "private")),
    "default-gateway": check_ip,
    "default-gateway-v6": check_ip,
    "default-ipc-mode": _check_choice(("host", "private", "shareable", "none")),
    "default-network-opts": _check_object(MAP_OF_STR),
    "default-runtime": check_str,
    "default-shm-size": check_size,
    "default-ulimits": _check_object(check_ulimit),
    "dns": _check_list(check_ip),
    "dns-opts": LIST_OF_STR,
    "dns-search": _check_list(check_search_domain),
    "exec-opts": LIST_OF_STR,
    "exec-root": check_absolute_path,
    "experimental": check_bool,
    "features": _check_object(check_bool),
    "fixed-cidr": check_cidr,
    "fixed-cidr-v6": check_cidr,
    "graph": check_absolute_path,
    "group": check_str,
    "host-gateway-ip": check_ip,
    "hosts": LIST_OF_STR,
    "icc": check_bool,
    "init": check_bool,
    "init-path": check_absolute_path,
    "insecure-registries": _check_list(check_insecure_registry),
    "ip": check_ip,
    "ip-forward": check_bool,
    "ip-masq": check_bool,
    "ip6tables": check_bool,
    "iptables": check_bool,
    "ipv6": check_bool,
    "labels": check_labels,
    "live-restore": check_bool,
    "log-driver": check_str,
    "log-format": _check_choice(("text", "json")),
    "log-level": _check_choice(LOG_LEVELS),
    "log-opts": MAP_OF_STR,
    "max-concurrent-downloads": check_non_negative_int,
    "max-concurrent-uploads": check_non_negative_int,
    "max-download-attempts": check_non_negative_int,
    "metrics-addr": check_str,
    "mtu": check_non_negative_int,
    "network-control-plane-mtu": check_non_negative_int,
    "network-diagnostic-port": check_port,
    "no-new-privileges": check_bool,
    "node-generic-resources": LIST_OF_STR,
    "oom-score-adjust": check_int,
    "pidfile": check_absolute_path,
    "proxies": check_proxies,
    "raw-logs": check_bool,
    "registry-mirrors": _check_list(check_mirror),
    "rootless": check_bool,
    "runtimes": _check_object(check_runtime),
    "seccomp-profile": check_str,
    "selinux-enabled": check_bool,
    "shutdown-timeout": check_int,
    "storage-driver": check_str,
    "storage-opts": LIST_OF_STR,
    "swarm-default-advertise-addr": check_str,
    "tls": check_bool,
    "tlscacert": check_str,
    "tlscert": check_str,
    "tlskey": check_str,
    "tlsverify": check_bool,
    "userland-proxy": check_bool,
    "userland-proxy-path": check_absolute_path,
    "userns-remap": check_str,
}


def suggest_key(key):
    """The known key closest to a misspelt one, or None."""
    matches = difflib.get_close_matches(key, list(KNOWN_KEYS), n=1, cutoff=0.75)
    return matches[0] if matches else None


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


def key_version_problem(key, version):
    """Why an engine of `version` refuses `key`, or None (also None when the version is unknown)."""
    if version is None or key not in KEY_VERSIONS:
        return None
    first, removed = KEY_VERSIONS[key]
    if tuple(version[:2]) < first:
        return "needs Docker Engine %s or later; this engine is %s" % (format_version(first), format_version(version))
    if removed is not None and tuple(version[:2]) >= removed:
        return "was removed in Docker Engine %s; this engine is %s" % (format_version(removed), format_version(version))
    return None


ValidationReport = namedtuple("ValidationReport", "errors warnings")


UNTOUCHED = " (already in the file before this change; dockerd would refuse the file at its next start: fix it, or drop it with remove)"


def validate_config(config, changed_keys, engine_version=None, unknown_keys_checked_elsewhere=False):
    """Check every key of the candidate configuration.

    Every problem is an error, also in keys this run leaves alone: the file is what dockerd reads
    at its next start, whatever restarts it. Those say that they were there before.
    With unknown_keys_checked_elsewhere (dockerd --validate will run), an unknown key is left to
    dockerd, which knows the keys of its own version better than this table (a warning).
    """
    errors, warnings = [], []
    for key in config:
        note = "" if key in changed_keys else UNTOUCHED
        value = config[key]
        if key in KNOWN_KEYS:
            for problem in (KNOWN_KEYS[key](value), key_version_problem(key, engine_version)):
                if problem:
                    errors.append("%s %s%s" % (_quote(key), problem, note))
        elif key in FLAG_NAMES_OF_KEYS:
            # dockerd finds a flag of that name, so it neither refuses the key nor applies it
            (errors if key in changed_keys else warnings).append(
                "%s is the name of dockerd's command-line flag; in daemon.json it is %s (dockerd silently ignores %s)" % (
                    _quote(key), _quote(FLAG_NAMES_OF_KEYS[key]), _quote(key)))
        else:
            suggestion = suggest_key(key)
            hint = " (did you mean %s?)" % _quote(suggestion) if suggestion else ""
            if unknown_keys_checked_elsewhere:
                warnings.append("%s is not a daemon.json key this module knows%s; dockerd --validate decides" % (_quote(key), hint))
            else:
                errors.append("%s is not a daemon.json key dockerd knows%s: dockerd refuses to start with an unknown key%s" % (_quote(key), hint, note))
    if "graph" in config and "data-root" in config:
        note = "" if {"graph", "data-root"} & set(changed_keys) else UNTOUCHED
        errors.append("'graph' and 'data-root' are both set: dockerd refuses that; keep only data-root%s" % note)
    return ValidationReport(errors, warnings)


def flatten_for_dockerd(config):
    """The keys dockerd checks against its flags, each mapped to the path it came from."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and key not in FLAT_OPTIONS:
            for inner in value:
                flat[inner] = "%s.%s" % (key, inner)
        else:
            flat[key] = key
    return flat


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


# A URL inside text: the scheme, then everything up to white space or a quote. Its userinfo is
# what comes before the LAST '@' (a password may hold '@', ':', '/'); the user ends at the first ':'.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s\"'<>]*)")
MASK = "xxxxx"


def _split_userinfo(rest):
    """(user, password, after the '@') of what follows scheme://, or None without a password."""
    userinfo, at, after = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    user, dummy, password = userinfo.partition(":")
    return user, password, after


def mask_url(text):
    """Hide the password in any scheme://user:password@host inside text."""
    if not isinstance(text, str):
        return text

    def hide(match):
        parts = _split_userinfo(match.group("rest"))
        if parts is None:
            return match.group(0)
        return "%s%s:%s@%s" % (match.group("scheme"), parts[0], MASK, parts[2])
    return _URL.sub(hide, text)


def url_password(url):
    """The password inside scheme://user:password@host, or None."""
    match = _URL.search(url or "") if isinstance(url, str) else None
    parts = _split_userinfo(match.group("rest")) if match else None
    return parts[1] if parts and parts[1] else None


def passwords_in(value):
    """Every URL password inside a JSON value or text, also percent-decoded (dockerd may print either)."""
    found = set()
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, str):
            for match in _URL.finditer(node):
                parts = _split_userinfo(match.group("rest"))
                if parts and parts[1]:
                    found.update((parts[1], unquote(parts[1])))
    return found


def hide_secrets(text, secrets):
    """text with URL passwords masked and every known secret replaced (longest first)."""
    text = mask_url(text)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask_credentials(value):
    """A copy of a JSON value with URL passwords hidden, for output and diffs."""
    if isinstance(value, dict):
        return dict((key, mask_credentials(item)) for key, item in value.items())
    if isinstance(value, list):
        return [mask_credentials(item) for item in value]
    return mask_url(value)


# ---------------------------------------------------------------------------------------------
# The engine's systemd unit: which flags dockerd already gets


# Flags whose daemon.json key is not the flag's own name (dockerd's NamedOption values).
FLAG_KEYS = {
    "H": "hosts",
    "host": "hosts",
    "D": "debug",
    "G": "group",
    "b": "bridge",
    "g": "graph",
    "l": "log-level",
    "p": "pidfile",
    "s": "storage-driver",
    "add-runtime": "runtimes",
    "authorization-plugin": "authorization-plugins",
    "cdi-spec-dir": "cdi-spec-dirs",
    "cluster-store-opt": "cluster-store-opts",
    "default-address-pool": "default-address-pools",
    "default-network-opt": "default-network-opts",
    "default-ulimit": "default-ulimits",
    "dns-opt": "dns-opts",
    "exec-opt": "exec-opts",
    "insecure-registry": "insecure-registries",
    "label": "labels",
    "log-opt": "log-opts",
    "node-generic-resource": "node-generic-resources",
    "registry-mirror": "registry-mirrors",
    "storage-opt": "storage-opts",
}
# Long flag names that are not their daemon.json key (registry-mirror for registry-mirrors).
FLAG_NAMES_OF_KEYS = dict((flag, key) for flag, key in FLAG_KEYS.items() if len(flag) > 1 and flag != key)
# Flags that are no daemon.json key at all.
FLAGS_WITHOUT_KEY = frozenset(["config-file", "validate", "version", "v", "help", "h"])
# Boolean flags never take the next word as their value.
BOOLEAN_FLAGS = frozenset([
    "D", "debug", "experimental", "icc", "init", "ip-forward", "ip-masq", "ip6tables", "iptables", "ipv6", "live-restore",
    "no-new-privileges", "raw-logs", "rootless", "selinux-enabled", "tls", "tlsverify", "userland-proxy", "validate", "version", "v",
    "help", "h",
])

UnitFlag = namedtuple("UnitFlag", "flag value key")
UnitInfo = namedtuple("UnitInfo", "exec_start exec_start_file environment environment_files exec_reload files")


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


def parse_unit(text, default_file=None):
    """Read the concatenated unit and drop-ins that `systemctl cat` prints (each file after a
    '# /path' line) into what matters here: the effective ExecStart and the file that set it,
    Environment= assignments, EnvironmentFile= paths (path, optional) and whether ExecReload is set."""
    current_file = default_file
    files = []
    section = None
    exec_start = None
    exec_start_file = None
    exec_reload = False
    environment = {}
    environment_files = []
    previous_blank = True
    for line in _logical_lines(text):
        stripped = line.strip()
        header = _FILE_HEADER.match(stripped)
        if header and (previous_blank or not files):
            current_file = header.group(1)
            files.append(current_file)
            section = None
            previous_blank = False
            continue
        previous_blank = not stripped
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1]
            continue
        if section != "Service" or "=" not in stripped:
            continue
        name, value = stripped.split("=", 1)
        name, value = name.strip(), value.strip()
        if name == "ExecStart":
            if value:
                exec_start, exec_start_file = value, current_file
            else:
                exec_start, exec_start_file = None, current_file
        elif name == "ExecReload":
            exec_reload = bool(value)
        elif name == "Environment":
            if not value:
                environment = {}
                continue
            try:
                words = shlex.split(value)
            except ValueError:
                words = value.split()
            for word in words:
                if "=" in word:
                    key, item = word.split("=", 1)
                    environment[key] = item
        elif name == "EnvironmentFile":
            if not value:
                environment_files = []
                continue
            optional = value.startswith("-")
            environment_files.append((value.lstrip("-"), optional))
    if default_file and not files:
        files.append(default_file)
    return UnitInfo(exec_start, exec_start_file, environment, environment_files, exec_reload, files)


_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand_exec_start(exec_start, environment):
    """The argv systemd builds from ExecStart: prefixes dropped, quotes honoured, a lone $VAR split
    into words and ${VAR} (or $VAR inside a word) substituted as is."""
    command = exec_start.lstrip("@-:+!")
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise DaemonJsonError("cannot read ExecStart=%s: %s" % (exec_start, exc)) from exc
    argv = []
    for word in words:
        lone = re.match(r"^\$(\w+)$", word)
        if lone:
            argv.extend(environment.get(lone.group(1), "").split())
            continue
        argv.append(_VARIABLE.sub(lambda match: environment.get(match.group(1) or match.group(2), ""), word))
    return argv


def dockerd_flags(argv):
    """The flags in a dockerd command line, with the daemon.json key each one sets (or None)."""
    flags = []
    words = list(argv[1:]) if argv else []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--" or not word.startswith("-") or word == "-":
            continue
        if word.startswith("--"):
            name, has_value, value = word[2:].partition("=")
        else:
            name, value = word[1], word[2:]
            has_value = bool(value)
            if value.startswith("="):
                value = value[1:]
        if not has_value and name not in BOOLEAN_FLAGS and index < len(words) and not words[index].startswith("-"):
            value = words[index]
            index += 1
        if name in FLAGS_WITHOUT_KEY:
            key = None
        else:
            key = FLAG_KEYS.get(name, name)
        flags.append(UnitFlag(("--" if len(name) > 1 else "-") + name, value, key))
    return flags


def config_file_flag(flags):
    """The --config-file dockerd is started with, or None."""
    for flag in flags:
        if flag.flag == "--config-file" and flag.value:
            return flag.value
    return None


def find_flag_conflicts(config, flags, unit_file, host=None):
    """[(daemon.json path, top-level key, message)] for every setting dockerd also gets as a flag:
    dockerd refuses to start with such a file, so each one is a reason not to write it."""
    flat = flatten_for_dockerd(config)
    conflicts = []
    for flag in flags:
        if flag.key is None or flag.key in SKIP_DUPLICATE_CHECK or flag.key not in flat:
            continue
        path = flat[flag.key]
        shown = "%s %s" % (flag.flag, flag.value) if flag.value else flag.flag
        conflicts.append((path, path.split(".", 1)[0], (
            "%sdaemon.json key '%s' conflicts with the flag '%s' that %s passes to dockerd (ExecStart): dockerd refuses to start "
            "when a setting is given both ways. Leave '%s' out of daemon.json (remove: ['%s']), or remove the flag from ExecStart with a drop-in."
        ) % ("on %s, " % host if host else "", path, mask_url(shown), unit_file or "the docker unit", path, path)))
    return conflicts
