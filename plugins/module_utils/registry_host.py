# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The registry host's side of the registry PKI: its directories, its files and its own names.

Plain functions, standard library only: the registry host needs no Python crypto package.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import platform
import re
import socket
import stat
import struct

from ansible_collections.fleet.images.plugins.module_utils.atomic_file import atomic_write

SIOCGIFADDR = 0x8915
RTF_UP = 0x0001
# How Docker names a registry's directory in /etc/docker/certs.d.
REGISTRY_ADDRESS = re.compile(r"^[-A-Za-z0-9._]+:[0-9]{1,5}$")
DOCKER_CERTS_D = "/etc/docker/certs.d"


def ensure_directory(path, mode, check_mode=False):
    """Make `path` a directory owned by root with `mode` (missing parents 0755). Returns True when it had to change."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if not check_mode:
            parent = os.path.dirname(path.rstrip("/"))
            if parent and not os.path.isdir(parent):
                ensure_directory(parent, 0o755)
            os.mkdir(path, mode)
            os.chmod(path, mode)  # mkdir's mode goes through the umask
            _own_by_root(path)
        return True
    if not stat.S_ISDIR(info.st_mode):
        raise OSError("%s exists and is not a directory" % path)
    changed = stat.S_IMODE(info.st_mode) != mode or (os.geteuid() == 0 and (info.st_uid, info.st_gid) != (0, 0))
    if changed and not check_mode:
        os.chmod(path, mode)
        _own_by_root(path)
    return changed


def _own_by_root(path):
    if os.geteuid() == 0:
        os.chown(path, 0, 0)


def read_file(path):
    """{"content": text, "mode": "0644"} for a file, or None when there is none."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
    except FileNotFoundError:
        return None
    return {"content": data.decode("utf-8", "replace"), "mode": "%04o" % mode}


def holds(path, content, mode):
    """True when the file at `path` has exactly `content` and `mode` (what write_file would leave)."""
    return read_file(path) == {"content": content, "mode": "%04o" % mode}


def write_file(path, content, mode):
    """Write `content` atomically with `mode`, owned by root. Returns True when anything changed."""
    changed = atomic_write(path, content.encode("utf-8"), mode)
    info = os.stat(path)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)
        changed = True
    if os.geteuid() == 0 and (info.st_uid, info.st_gid) != (0, 0):
        os.chown(path, 0, 0)
        changed = True
    return changed


def looks_like_pem_certificate(text):
    """True when `text` holds at least one PEM certificate block whose body is base64."""
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----\s*(.*?)\s*-----END CERTIFICATE-----", text or "", re.S)
    for body in blocks:
        try:
            base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            return False
    return bool(blocks)


def registry_address_problem(registry, certs_d=DOCKER_CERTS_D):
    """Why `registry` cannot name a directory of certs_d, or None."""
    if isinstance(registry, str) and REGISTRY_ADDRESS.match(registry):
        return None
    return ("registry %r is not HOST:PORT (letters, digits, '.', '-', '_', then ':' and a port), the form Docker looks up in %s"
            % (registry, certs_d))


def docker_ca_path(registry, certs_d=DOCKER_CERTS_D):
    """Where Docker reads the CA it trusts for `registry` (at each connection, no restart)."""
    return os.path.join(certs_d, registry, "ca.crt")


def install_ca(path, ca_cert, check_mode=False):
    """Write the PEM `ca_cert` to `path` (0644; a missing directory is made 0755, an existing one left
    as it is). Returns True when anything changed.

    Raises ValueError, writing nothing, when ca_cert is not a PEM certificate.
    """
    if not looks_like_pem_certificate(ca_cert):
        raise ValueError("the CA for %s is not a PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----): "
                         "nothing was written" % path)
    content = ca_cert.strip() + "\n"
    directory = os.path.dirname(path)
    made = not os.path.isdir(directory) and ensure_directory(directory, 0o755, check_mode)
    if check_mode:
        return made or not holds(path, content, 0o644)
    return write_file(path, content, 0o644) or made


def _interface_ipv4(interface):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("256s", interface[:15].encode("utf-8"))
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
        except OSError:  # the interface has no IPv4 address
            return ""
    return socket.inet_ntoa(answer[20:24])


def route_interfaces(route_table_text):
    """Interfaces from /proc/net/route's text: default-route ones first (lowest metric first), then the others."""
    default, other = [], []
    for line in route_table_text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[0] == "lo" or not int(fields[3], 16) & RTF_UP:
            continue
        target = default if fields[1] == "00000000" else other
        target.append((int(fields[6]), fields[0]))
    ordered = [name for _metric, name in sorted(default)] + [name for _metric, name in sorted(other)]
    return list(dict.fromkeys(ordered))


def default_ipv4(route_table="/proc/net/route"):
    """The IPv4 address of the interface the default route leaves by (without one, of the first routed interface).

    Read from the kernel's tables only: nothing is sent anywhere.
    """
    try:
        with open(route_table) as handle:
            interfaces = route_interfaces(handle.read())
    except OSError:
        return ""
    for interface in interfaces:
        address = _interface_ipv4(interface)
        if address:
            return address
    return ""


def own_names():
    """The host's fully qualified name, short host name and default IPv4 address (each '' when unknown)."""
    return {"fqdn": socket.getfqdn(), "hostname": platform.node().split(".")[0], "default_ipv4": default_ipv4()}
