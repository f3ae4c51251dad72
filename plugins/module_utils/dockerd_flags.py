# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dockerd's command line: which flags the unit's ExecStart passes, and the daemon.json key each one sets.

Pure functions; the argv comes from systemd_unit.expand_exec_start().
"""

from __future__ import annotations

from collections import namedtuple

# The binary names a unit's ExecStart may start dockerd as.
DOCKERD_BINARY_NAMES = ("dockerd",)

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
