# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry container on a Docker Engine: ports, create and remove, the health wait, and the candidate swap.

A redeploy first runs the new settings in <name>-candidate (on an ephemeral loopback port), then
parks the running registry as <name>-previous until the new one answers.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import time
from urllib.parse import urlparse

from ansible_collections.fleet.images.plugins.module_utils.registry import (
    CONTAINER_PORT,
    LABEL_MANAGED,
    host_port,
    is_wildcard,
    probe_host,
    registry_url,
)
from ansible_collections.fleet.images.plugins.module_utils.registry_api import api_session, is_certificate_error, probe

try:
    from docker.errors import NotFound
    from docker.types import Mount
except ImportError:
    NotFound = LookupError
    Mount = None

try:
    from requests.exceptions import RequestException
except ImportError:
    RequestException = OSError

LOG_LINES = 30
STOP_TIMEOUT = 10
CANDIDATE_SUFFIX = "-candidate"
PREVIOUS_SUFFIX = "-previous"


class RegistryDeployError(Exception):
    """A failure worded for the operator; `details` go into the module result next to msg."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def find_container(client, name):
    try:
        return client.containers.get(name)
    except NotFound:
        return None


def published_ports(container):
    """(host_ip, host_port) pairs a container publishes, from its inspect data."""
    pairs = []
    for bindings in ((container.attrs.get("HostConfig") or {}).get("PortBindings") or {}).values():
        for binding in bindings or []:
            if binding.get("HostPort"):
                pairs.append((binding.get("HostIp") or "", int(binding["HostPort"])))
    return pairs


def addresses_overlap(first, second):
    return is_wildcard(first) or is_wildcard(second) or first == second


def port_owner(client, port, bind_address, own_name):
    """Name of another running container that publishes port on an overlapping address, or None."""
    for container in client.containers.list():
        if container.name == own_name:
            continue
        for host_ip, host_port_number in published_ports(container):
            if host_port_number == port and addresses_overlap(host_ip, bind_address):
                return container.name
    return None


def port_is_free(bind_address, port):
    """Try to bind the address ourselves: the only check that also sees processes outside Docker."""
    address = bind_address or "0.0.0.0"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address.strip("[]"), port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            if exc.errno == errno.EADDRNOTAVAIL:
                raise RegistryDeployError("bind_address %s is not an address of this host" % bind_address) from exc
            raise
    return True


def holds_port(container, bind_address, port):
    if container is None or container.status != "running":
        return False
    return any(p == port and (h or "0.0.0.0") == (bind_address or "0.0.0.0") for h, p in published_ports(container))


def check_port(client, container, bind_address, port, engine_is_local):
    if holds_port(container, bind_address, port):
        return
    where = host_port(bind_address or "0.0.0.0", port)
    owner = port_owner(client, port, bind_address, container.name if container else None)
    if owner:
        raise RegistryDeployError("Port %s is already published by the container %s: choose another port or remove it" % (where, owner),
                                  port=port)
    if engine_is_local and not port_is_free(bind_address, port):
        raise RegistryDeployError(
            "Port %s is already in use by another process on this host (see: ss -ltnp 'sport = :%d'): choose another port "
            "or stop that process" % (where, port), port=port
        )


def container_logs(container, lines=LOG_LINES):
    try:
        return container.logs(tail=lines).decode("utf-8", "replace").rstrip().splitlines()
    except Exception as exc:  # the logs are a courtesy on an error path; never hide the error itself
        return ["(could not read the container's logs: %s)" % exc]


def _stopped(container, restarts):
    """The container's restart count; raises when it stopped or restarted since `restarts` (None: first look)."""
    container.reload()
    state = container.attrs.get("State") or {}
    restart_count = container.attrs.get("RestartCount", 0)
    if state.get("Status") in ("exited", "dead") or (restarts is not None and restart_count > restarts):
        raise RegistryDeployError(
            "The registry container %s stopped right after starting (exit code %s). Its last log lines:\n%s"
            % (container.name, state.get("ExitCode"), "\n".join(container_logs(container))),
            container_id=container.id, logs=container_logs(container),
        )
    return restart_count


def wait_until_ready(container, url, ca_path, timeout):
    """Poll until /v2/ answers 200 or 401; fail at once when the container stops or restarts, or its certificate
    does not verify with ca_path (or, without one, with the host's trust store)."""
    # The probe reaches the registry on its host, while the certificate names the names clients use: the chain is
    # verified, not the host name. Each poll also looks at the container, so no retries inside the session.
    session = api_session(ca_path, retries=False, check_hostname=False)
    deadline = time.monotonic() + timeout
    restarts = None
    last_error = "no answer yet"
    while True:
        restarts = _stopped(container, restarts)
        try:
            status = probe(session, url)
            if status in (200, 401):
                return status
            last_error = "HTTP %d" % status
        except RequestException as exc:
            if is_certificate_error(exc):
                raise RegistryDeployError(
                    "The registry container %s serves a certificate that %s does not verify: %s. Give as tls_ca the CA that "
                    "signed tls_cert." % (container.name, "tls_ca %s" % ca_path if ca_path else "this host's trust store", exc),
                    container_id=container.id) from exc
            last_error = str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            raise RegistryDeployError(
                "The registry did not answer on %s/v2/ within %d s (last: %s). The last log lines of container %s:\n%s"
                % (url, timeout, last_error, container.name, "\n".join(container_logs(container))),
                container_id=container.id, logs=container_logs(container),
            )
        time.sleep(0.5)


def engine_probe_host(docker_host, bind_address):
    """Where the module reaches the registry: its own host for a local engine, the engine's host otherwise."""
    if not is_wildcard(bind_address):
        return bind_address
    parsed = urlparse(docker_host or "")
    if parsed.scheme in ("tcp", "http", "https", "ssh") and parsed.hostname:
        return parsed.hostname
    return probe_host(bind_address)


def is_local_engine(docker_host):
    return not docker_host or docker_host.startswith("unix://")


def create_container(client, spec, labels, name=None, candidate=False):
    """The registry container of `spec`; a candidate gets `name`, an ephemeral loopback port and no restart policy."""
    restart = {"Name": "no" if candidate else spec["restart_policy"]}
    if restart["Name"] == "on-failure":
        restart["MaximumRetryCount"] = 0
    mounts = [Mount(m["target"], m["source"], type="bind", read_only=m["read_only"]) for m in spec["mounts"]]
    binding = ("127.0.0.1",) if candidate else (spec["bind_address"] or "0.0.0.0", spec["port"])
    return client.containers.create(
        spec["image"],
        command=spec["command"],
        name=name or spec["name"],
        detach=True,
        labels=labels,
        mounts=mounts,
        ports={"%d/tcp" % CONTAINER_PORT: binding},
        restart_policy=restart,
    )


def remove_container(container):
    with contextlib.suppress(NotFound):
        if container.status == "running":
            container.stop(timeout=STOP_TIMEOUT)
        # Anonymous volumes are kept: a registry first run by hand may hold its images there.
        container.remove(force=True, v=False)


def _is_managed(container):
    return (container.labels or {}).get(LABEL_MANAGED) == "fleet.images.registry_deploy"


def clean_leftovers(client, name, check_mode):
    """The container named `name`, after undoing what an interrupted run left behind.

    A candidate container is removed; a registry parked as <name>-previous is renamed back when
    no <name> exists (the run stopped half way through a swap), removed otherwise. In check mode
    nothing is touched and the parked registry stands for <name>.
    """
    current = find_container(client, name)
    candidate = find_container(client, name + CANDIDATE_SUFFIX)
    previous = find_container(client, name + PREVIOUS_SUFFIX)
    if check_mode:
        return current if current is not None or previous is None or not _is_managed(previous) else previous
    if candidate is not None and _is_managed(candidate):
        remove_container(candidate)
    if previous is not None and _is_managed(previous):
        if current is None:
            previous.rename(name)
            previous.reload()
            current = previous
        else:
            remove_container(previous)
    return current


def try_candidate(client, spec, labels, tls, ca_path, timeout):
    """Run the new settings in <name>-candidate on an ephemeral loopback port until /v2/ answers; always removed."""
    candidate = create_container(client, spec, labels, name=spec["name"] + CANDIDATE_SUFFIX, candidate=True)
    try:
        candidate.start()
        candidate.reload()
        bindings = (candidate.attrs.get("NetworkSettings") or {}).get("Ports", {}).get("%d/tcp" % CONTAINER_PORT) or []
        if not bindings:
            raise RegistryDeployError("The candidate container %s got no published port: its last log lines:\n%s"
                                      % (candidate.name, "\n".join(container_logs(candidate))), logs=container_logs(candidate))
        url = registry_url("127.0.0.1", int(bindings[0]["HostPort"]), tls)
        wait_until_ready(candidate, url, ca_path, timeout)
    except RegistryDeployError as exc:
        raise RegistryDeployError(
            "The new settings of registry %s do not work, and the running registry was left as it is, still serving. They "
            "were tried first in the candidate container %s: %s" % (spec["name"], candidate.name, exc), **exc.details
        ) from exc
    finally:
        remove_container(candidate)


def swap(client, old, spec, labels, url, ca_path, timeout, put_files_back):
    """Park the running registry as <name>-previous, start the new one; put the old one back when it does not answer."""
    name = spec["name"]
    was_running = old.status in ("running", "restarting")
    if was_running:
        old.stop(timeout=STOP_TIMEOUT)
    old.rename(name + PREVIOUS_SUFFIX)
    new = None
    try:
        new = create_container(client, spec, labels)
        new.start()
        status = wait_until_ready(new, url, ca_path, timeout)
    except Exception as exc:
        if new is not None:
            remove_container(new)
        put_files_back()
        old.rename(name)
        back = ""
        if was_running:
            old.start()
            try:
                wait_until_ready(old, url, ca_path, timeout)
                back = " and serves again"
            except RegistryDeployError as again:
                back = ", but does not answer either: %s" % again
        details = getattr(exc, "details", {})
        message = str(exc) if isinstance(exc, RegistryDeployError) else (getattr(exc, "explanation", None) or str(exc))
        raise RegistryDeployError("%s\nThe previous registry container %s was put back%s." % (message, name, back), **details) from exc
    remove_container(old)
    return new, status
