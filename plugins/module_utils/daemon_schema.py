# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which daemon.json keys and values dockerd accepts, checked on the whole file before it is written.

Pure functions. The rules follow what dockerd does when it reads the file (daemon/config in moby):
unknown keys are refused, a key set both in the file and as a command-line flag is refused, nested
objects other than a few "flat" ones are flattened before both checks.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections import namedtuple
from urllib.parse import urlsplit

from ansible_collections.fleet.images.plugins.module_utils.daemon_json import format_version, json_type, quote
from ansible_collections.fleet.images.plugins.module_utils.dockerd_flags import FLAG_NAMES_OF_KEYS
from ansible_collections.fleet.images.plugins.module_utils.url_secrets import mask_url

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
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


def check_bool(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        return "must be a JSON boolean (true or false without quotes), not %s: Docker 23 and later refuse quoted booleans" % json_type(value)
    return "must be a JSON boolean (true or false), not %s" % json_type(value)


def _check_int(value, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (without quotes)" if isinstance(value, str) and value.strip().lstrip("-").isdigit() else ""
        return "must be a whole JSON number%s, not %s" % (hint, json_type(value))
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
    return "must be a JSON string, not %s" % json_type(value)


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
            return "must be a JSON list, not %s" % json_type(value)
        for index, item in enumerate(value):
            problem = item_check(item)
            if problem:
                return "item %d %s" % (index + 1, problem)
        return None
    return check


def _check_object(value_check=None):
    def check(value):
        if not isinstance(value, dict):
            return "must be a JSON object, not %s" % json_type(value)
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
        return "must be a JSON object with http-proxy, https-proxy and no-proxy, not %s" % json_type(value)
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
        return "must be an object {\"base\": \"10.10.0.0/16\", \"size\": 24}, not %s" % json_type(value)
    problem = check_cidr(value.get("base"))
    if problem:
        return "base %s" % problem
    problem = _check_int(value.get("size"), minimum=1, maximum=128)
    if problem:
        return "size %s" % problem
    return None


def check_ulimit(value):
    if not isinstance(value, dict):
        return "must be an object {\"Name\": \"nofile\", \"Hard\": 64000, \"Soft\": 64000}, not %s" % json_type(value)
    for limit in ("Hard", "Soft"):
        if limit in value:
            problem = check_int(value[limit])
            if problem:
                return "%s %s" % (limit, problem)
    return None


def check_runtime(value):
    if not isinstance(value, dict):
        return "must be an object such as {\"path\": \"/usr/bin/runsc\"}, not %s" % json_type(value)
    if "path" in value and check_str(value["path"]):
        return "path %s" % check_str(value["path"])
    if "runtimeArgs" in value and _check_list(check_str)(value["runtimeArgs"]):
        return "runtimeArgs %s" % _check_list(check_str)(value["runtimeArgs"])
    return None


def check_any_object(value):
    return _check_object()(value)


LIST_OF_STR = _check_list(check_str)
MAP_OF_STR = _check_object(check_str)


# The daemon.json keys dockerd knows on Linux (Docker 20.10 to 27), by the kind of value it reads.
# This is the one copy of dockerd's schema the module keeps, as data. Where `dockerd --validate`
# runs (Docker 23 and later) dockerd decides which keys exist; Docker 20.10 has no --validate and
# refuses an unknown key or a value of the wrong JSON type only when it starts, which takes Docker
# down until the rollback of the daemon role: there these names and checks are the only check before the write.
# The checks also give every engine the clearer messages (a quoted boolean, a mirror with a path).
KNOWN_KEYS_BY_CHECK = (
    (check_bool, "debug experimental icc init ip-forward ip-masq ip6tables iptables ipv6 live-restore no-new-privileges raw-logs rootless "
     "selinux-enabled tls tlsverify userland-proxy"),
    (check_int, "cpu-rt-period cpu-rt-runtime oom-score-adjust shutdown-timeout"),
    (check_non_negative_int, "max-concurrent-downloads max-concurrent-uploads max-download-attempts mtu network-control-plane-mtu"),
    (check_port, "network-diagnostic-port"),
    (check_str, "api-cors-header bridge cgroup-parent cluster-advertise cluster-store containerd containerd-namespace "
     "containerd-plugins-namespace default-runtime group log-driver metrics-addr seccomp-profile storage-driver "
     "swarm-default-advertise-addr tlscacert tlscert tlskey userns-remap"),
    (check_absolute_path, "data-root exec-root graph init-path pidfile userland-proxy-path"),
    (check_ip, "default-gateway default-gateway-v6 host-gateway-ip ip"),
    (check_cidr, "bip fixed-cidr fixed-cidr-v6"),
    (check_size, "default-shm-size"),
    (LIST_OF_STR, "allow-nondistributable-artifacts authorization-plugins cdi-spec-dirs dns-opts exec-opts hosts node-generic-resources "
     "storage-opts"),
    (MAP_OF_STR, "cluster-store-opts log-opts"),
    (check_any_object, "builder"),
    (_check_list(check_ip), "dns"),
    (_check_list(check_search_domain), "dns-search"),
    (check_labels, "labels"),
    (_check_list(check_mirror), "registry-mirrors"),
    (_check_list(check_insecure_registry), "insecure-registries"),
    (check_proxies, "proxies"),
    (_check_list(check_address_pool), "default-address-pools"),
    (_check_object(check_ulimit), "default-ulimits"),
    (_check_object(check_runtime), "runtimes"),
    (_check_object(MAP_OF_STR), "default-network-opts"),
    (_check_object(check_bool), "features"),
    (_check_choice(("host", "private")), "default-cgroupns-mode"),
    (_check_choice(("host", "private", "shareable", "none")), "default-ipc-mode"),
    (_check_choice(("text", "json")), "log-format"),
    (_check_choice(LOG_LEVELS), "log-level"),
)

KNOWN_KEYS = dict((key, check) for check, keys in KNOWN_KEYS_BY_CHECK for key in keys.split())


def suggest_key(key):
    """The known key closest to a misspelt one, or None."""
    matches = difflib.get_close_matches(key, list(KNOWN_KEYS), n=1, cutoff=0.75)
    return matches[0] if matches else None


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
                    errors.append("%s %s%s" % (quote(key), problem, note))
        elif key in FLAG_NAMES_OF_KEYS:
            # dockerd finds a flag of that name, so it neither refuses the key nor applies it
            (errors if key in changed_keys else warnings).append(
                "%s is the name of dockerd's command-line flag; in daemon.json it is %s (dockerd silently ignores %s)" % (
                    quote(key), quote(FLAG_NAMES_OF_KEYS[key]), quote(key)))
        else:
            suggestion = suggest_key(key)
            hint = " (did you mean %s?)" % quote(suggestion) if suggestion else ""
            if unknown_keys_checked_elsewhere:
                warnings.append("%s is not a daemon.json key this module knows%s; dockerd --validate decides" % (quote(key), hint))
            else:
                errors.append("%s is not a daemon.json key dockerd knows%s: dockerd refuses to start with an unknown key%s" % (quote(key), hint, note))
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
