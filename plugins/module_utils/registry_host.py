# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The registry host's side of the registry PKI (its directories, files and own names), and CA trust.

Plain functions, standard library only: the registry host needs no Python crypto package.
`install_ca` is the one place that writes a CA where Docker reads it (registry_pki's docker_trust,
registry_trust and daemon_config all call it).
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
# The registry's PKI directory: the CA's and the server's key and certificate, with their modes.
PKI_FILE_MODES = {"ca.key": 0o600, "ca.crt": 0o644, "server.key": 0o600, "server.crt": 0o644}
# registry_pki's options (the action plugin validates them, the module on the host takes them too).
PKI_ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    common_name=dict(type="str", required=True),
    dns_names=dict(type="list", elements="str", default=[]),
    ip_addresses=dict(type="list", elements="str", default=[]),
    host_dns_names=dict(type="bool", default=True),
    host_ip_address=dict(type="bool", default=True),
    ca_common_name=dict(type="str", default="fleet.images registry CA"),
    ca_valid_days=dict(type="int", default=3650),
    cert_valid_days=dict(type="int", default=365),
    renew_days=dict(type="int", default=30),
    docker_trust=dict(type="str", default=""),
    certs_d=dict(type="path", default=DOCKER_CERTS_D),
)


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


def remove_ca(path, check_mode=False, prune_directory=False):
    """Remove a CA file written by install_ca (and, with prune_directory, its directory when that is then empty).
    True when it was there."""
    if not os.path.lexists(path):
        return False
    if not check_mode:
        os.unlink(path)
        directory = os.path.dirname(path)
        if prune_directory and os.path.isdir(directory) and not os.listdir(directory):
            os.rmdir(directory)
    return True


def trust_registry(registry, ca_cert, certs_d=DOCKER_CERTS_D, system_store_path=None, present=True, check_mode=False):
    """registry_trust's job: the registry's CA where Docker reads it (and in the system store), or gone.

    Raises ValueError (a bad registry address or CA, nothing written) or OSError.
    """
    problem = registry_address_problem(registry, certs_d)
    if problem:
        raise ValueError(problem)
    path = docker_ca_path(registry, certs_d)
    result = dict(path=path, docker_changed=False, system_store_changed=False)
    if present:
        result["docker_changed"] = install_ca(path, ca_cert, check_mode)
        if system_store_path:
            result["system_store_changed"] = install_ca(system_store_path, ca_cert, check_mode)
    else:
        result["docker_changed"] = remove_ca(path, check_mode, prune_directory=True)
        if system_store_path:
            result["system_store_changed"] = remove_ca(system_store_path, check_mode)
    result["changed"] = result["docker_changed"] or result["system_store_changed"]
    return result


def pki_paths(params):
    """(PKI directory, {file name: path}, path of the docker_trust CA or None)."""
    pki_dir = params["path"].rstrip("/") or "/"
    files = {name: os.path.join(pki_dir, name) for name in PKI_FILE_MODES}
    trust = docker_ca_path(params["docker_trust"], params["certs_d"]) if params["docker_trust"] else None
    return pki_dir, files, trust


def write_pki_files(files, contents, check_mode):
    """Write each given PKI file whose content or mode differs; returns their names. An OSError carries `written`."""
    written = []
    for name, content in sorted(contents.items()):
        if name not in PKI_FILE_MODES:
            raise ValueError("%s is not a file of the registry's PKI (%s)" % (name, ", ".join(sorted(PKI_FILE_MODES))))
        try:
            if (not holds(files[name], content, PKI_FILE_MODES[name])) if check_mode else write_file(files[name], content, PKI_FILE_MODES[name]):
                written.append(name)
        except OSError as exc:
            exc.written = written
            raise
    return written


def pki_host_side(params, check_mode):
    """registry_pki's run on the host: make the directories, then read the files and the host's names (first run),
    or write the files and trust the CA the action plugin decided (`_write`, `_trust_ca`)."""
    if params["docker_trust"]:
        problem = registry_address_problem(params["docker_trust"], params["certs_d"])
        if problem:
            raise ValueError("docker_trust: %s" % problem)
    pki_dir, files, trust = pki_paths(params)
    made = [path for path, mode in ((os.path.dirname(pki_dir), 0o755), (pki_dir, 0o700)) if ensure_directory(path, mode, check_mode)]
    if params.get("_write") is None:
        found = {name: read_file(path) for name, path in files.items()}
        result = dict(changed=bool(made), made=made, files={name: value for name, value in found.items() if value is not None},
                      trust=read_file(trust) if trust else None)
        if params["host_dns_names"] or params["host_ip_address"]:
            result["names"] = own_names()
        return result
    written = write_pki_files(files, params["_write"], check_mode)
    trusted = bool(trust and params.get("_trust_ca") and install_ca(trust, params["_trust_ca"], check_mode))
    return dict(changed=bool(made or written or trusted), made=made, written=written, trusted=trusted)
