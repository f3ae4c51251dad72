# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""registry_deploy's work against a Docker Engine: checks first, then at most one recreate, then a health probe.

Every check that can fail on bad input (files, key/certificate pair, image, port) runs before a
running registry is touched, so a bad change leaves the old registry serving.
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import http.client
import os
import socket
import ssl
import time
from urllib.parse import urlparse

from ansible_collections.fleet.images.plugins.module_utils.atomic_file import atomic_write
from ansible_collections.fleet.images.plugins.module_utils.htpasswd import HtpasswdError, available_backend, plan_htpasswd
from ansible_collections.fleet.images.plugins.module_utils.registry import (
    CONTAINER_PORT,
    LABEL_FINGERPRINT,
    LABEL_MANAGED,
    MANIFEST_ACCEPT,
    RegistryConfigError,
    build_spec,
    certs_d_ca_path,
    changed_inputs,
    check_name,
    config_text,
    container_labels,
    default_config_path,
    default_data_dir,
    default_htpasswd_path,
    diff_view,
    fingerprint,
    host_port,
    is_wildcard,
    manifest_url,
    normalize_registry,
    parse_inputs_label,
    probe_host,
    registry_url,
    render_config,
    repo_digest_matches,
    sha256_text,
    spec_inputs,
    target_reference,
)

try:
    from docker.errors import ImageNotFound, NotFound
    from docker.types import Mount
except ImportError:
    ImageNotFound = NotFound = LookupError
    Mount = None

try:
    from cryptography import x509
except ImportError:
    x509 = None

try:
    import requests
except ImportError:
    requests = None

LOG_LINES = 30
STOP_TIMEOUT = 10
# A redeploy first runs the new settings in <name>-candidate (on an ephemeral loopback port), then
# parks the running registry as <name>-previous until the new one answers.
CANDIDATE_SUFFIX = "-candidate"
PREVIOUS_SUFFIX = "-previous"


class RegistryDeployError(Exception):
    """A failure worded for the operator; `details` go into the module result next to msg."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def read_text(path, what):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except FileNotFoundError:
        raise RegistryDeployError("%s %s does not exist" % (what, path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryDeployError("Cannot read %s %s: %s" % (what, path, exc)) from exc


def check_tls_pair(cert_path, key_path, warnings):
    """Fail unless both files exist, parse as PEM and the key belongs to the certificate."""
    for option, path, what in (("tls_cert", cert_path, "certificate"), ("tls_key", key_path, "private key")):
        if not path:
            raise RegistryDeployError("registry_tls=true needs %s (the server %s, PEM, on the registry host)" % (option, what))
        if not os.path.isfile(path):
            raise RegistryDeployError("%s %s does not exist or is not a file (the server %s, PEM)" % (option, path, what))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as exc:
        reason = str(getattr(exc, "reason", "") or exc)
        if "KEY_VALUES_MISMATCH" in reason or "key values mismatch" in str(exc):
            raise RegistryDeployError("tls_key %s does not match the certificate tls_cert %s: they are not a key pair"
                                      % (key_path, cert_path)) from exc
        raise RegistryDeployError("tls_cert %s and tls_key %s cannot be used as a TLS server pair (expected PEM files): %s"
                                  % (cert_path, key_path, exc)) from exc
    except OSError as exc:
        raise RegistryDeployError("Cannot read tls_cert %s or tls_key %s: %s" % (cert_path, key_path, exc)) from exc
    if x509 is not None:
        _warn_on_expiry(cert_path, warnings)


def _warn_on_expiry(cert_path, warnings):
    try:
        with open(cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
    except (OSError, ValueError):
        return
    not_after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after
    # cryptography < 42 returns a naive datetime in UTC.
    expires = not_after.timestamp() if not_after.tzinfo else calendar.timegm(not_after.timetuple())
    if expires < time.time():
        warnings.append("tls_cert %s expired on %s: clients will refuse the registry" % (cert_path, not_after.isoformat()))


def image_id_of(client, image):
    try:
        return client.images.get(image).id
    except ImageNotFound:
        raise RegistryDeployError(
            "Image %s is not on this host's Docker Engine, and registry_deploy never pulls. Load it from the bundle first "
            "with fleet.images.image_load (bundle: <bundle dir>, images: [%s])." % (image, image), image=image
        ) from None


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


def probe(url, ca_path, timeout=5):
    """One GET of URL/v2/; returns the HTTP status, or raises OSError/HTTPException while it does not answer."""
    parsed = urlparse(url)
    if parsed.scheme == "https":
        context = ssl.create_default_context(cafile=ca_path) if ca_path else ssl._create_unverified_context()  # nosec: health probe only
        if ca_path:
            # The certificate names the registry's public names, not loopback: check the chain only.
            context.check_hostname = False
        connection = http.client.HTTPSConnection(parsed.hostname, parsed.port, timeout=timeout, context=context)
    else:
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        connection.request("GET", "/v2/")
        return connection.getresponse().status
    finally:
        connection.close()


def wait_until_ready(container, url, ca_path, timeout):
    """Poll until /v2/ answers 200 or 401; fail at once when the container stops or restarts."""
    deadline = time.monotonic() + timeout
    restarts = None
    last_error = "no answer yet"
    while True:
        container.reload()
        state = container.attrs.get("State") or {}
        restart_count = container.attrs.get("RestartCount", 0)
        if restarts is None:
            restarts = restart_count
        if state.get("Status") in ("exited", "dead") or restart_count > restarts:
            raise RegistryDeployError(
                "The registry container %s stopped right after starting (exit code %s). Its last log lines:\n%s"
                % (container.name, state.get("ExitCode"), "\n".join(container_logs(container))),
                container_id=container.id, logs=container_logs(container),
            )
        try:
            status = probe(url, ca_path)
            if status in (200, 401):
                return status
            last_error = "HTTP %d" % status
        except ssl.SSLError as exc:
            last_error = "TLS error: %s" % exc
        except (OSError, http.client.HTTPException) as exc:
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


def plan_users(params, htpasswd_path):
    """(HtpasswdPlan or None, current file text or None)."""
    if not params["users"]:
        return None, None
    existing = read_text(htpasswd_path, "htpasswd_path") if os.path.exists(htpasswd_path) else None
    try:
        return plan_htpasswd(params["users"], existing, available_backend(), htpasswd_path, params["bcrypt_cost"]), existing
    except HtpasswdError as exc:
        raise RegistryDeployError(str(exc)) from exc


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


def read_bytes(path):
    """A file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


class FileChanges:
    """Root-only files written for a deploy, with what they held before, so a failed deploy puts them back.

    A container's bind mount resolves its source when it starts: a registry restored after a failed
    redeploy must find the files it was started with, not the new ones.
    """

    def __init__(self):
        self.before = []

    def write(self, path, data, old):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self.before.append((path, old))
        atomic_write(path, data, 0o600)

    def restore(self):
        while self.before:
            path, old = self.before.pop()
            with contextlib.suppress(OSError):
                if old is None:
                    os.unlink(path)
                else:
                    atomic_write(path, old, 0o600)


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


def remove(client, params, check_mode):
    container = clean_leftovers(client, params["name"], check_mode)
    result = {"changed": container is not None, "recreated": False, "container_id": container.id if container else None,
              "changed_inputs": [], "diff": {"before": {"container": params["name"] if container else None}, "after": {"container": None}}}
    if container is not None and not check_mode:
        remove_container(container)
    return result


def check_plain_http_auth(params):
    if params["users"] and not params["registry_tls"] and not params.get("allow_plain_http_auth"):
        raise RegistryConfigError(
            "registry %s: users with registry_tls=false would send every password in clear text over plain HTTP (basic auth). "
            "Serve TLS (registry_tls=true with tls_cert and tls_key), or set allow_plain_http_auth=true if the network between the "
            "clients and the registry is trusted." % params["name"]
        )


def deploy(client, params, check_mode):
    """Bring the registry container to the wanted state; returns the module result (without warnings)."""
    warnings = []
    check_name(params["name"])
    if not 1 <= params["port"] <= 65535:
        raise RegistryConfigError("port %d is not a TCP port (1-65535)" % params["port"])
    check_plain_http_auth(params)
    params = dict(params)
    params["data_dir"] = params["data_dir"] or default_data_dir(params["name"])
    htpasswd_path = params["htpasswd_path"] or default_htpasswd_path(params["name"])
    config_path = params.get("config_path") or default_config_path(params["name"])

    users_plan, htpasswd_before = plan_users(params, htpasswd_path)
    digests = {}
    if params["registry_tls"]:
        check_tls_pair(params["tls_cert"], params["tls_key"], warnings)
        digests["tls_cert"] = sha256_text(read_text(params["tls_cert"], "tls_cert"))
        digests["tls_key"] = sha256_text(read_text(params["tls_key"], "tls_key"))
    if users_plan is not None:
        digests["htpasswd"] = sha256_text(users_plan.content)

    image_id = image_id_of(client, params["image"])
    rendered = render_config(params["config"], params["registry_tls"], users_plan is not None, params["delete_enabled"],
                             "%s registry" % params["name"], params.get("read_only", False), params.get("tls_min_version") or "1.2")
    config_bytes = config_text(rendered).encode("utf-8")
    spec = build_spec(params, image_id, config_path, htpasswd_path if users_plan is not None else None)
    inputs = spec_inputs(spec, digests, [u["name"] for u in params["users"] or []], params["registry_tls"], params["delete_enabled"],
                         rendered, params["config"])

    container = clean_leftovers(client, params["name"], check_mode)
    old_inputs = parse_inputs_label(container.labels) if container is not None else None
    same = container is not None and container.labels.get(LABEL_FINGERPRINT) == fingerprint(inputs)
    if container is None:
        action = "create"
    elif not same:
        action = "recreate"
    elif container.status == "restarting":
        action = "restart"
    elif container.status != "running":
        action = "start"
    elif params["state"] == "restarted":
        action = "restart"
    else:
        action = None

    if action in ("create", "recreate", "start"):
        check_port(client, container, params["bind_address"], params["port"], is_local_engine(params.get("docker_host")))

    changes = changed_inputs(old_inputs, inputs) if action in ("create", "recreate") else []
    if action == "recreate" and old_inputs is None:
        warnings.append("container %s exists but was not created by fleet.images.registry_deploy: it is replaced "
                        "(its anonymous volumes are kept)" % params["name"])
    write_htpasswd = users_plan is not None and users_plan.content != htpasswd_before
    config_before = read_bytes(config_path)
    write_config = config_before != config_bytes
    makes_data_dir = not os.path.isdir(params["data_dir"])
    url = registry_url(engine_probe_host(params.get("docker_host"), params["bind_address"]), params["port"], params["registry_tls"])
    result = {
        "changed": bool(action or write_htpasswd or write_config or makes_data_dir),
        "recreated": action == "recreate",
        "action": action or "none",
        "container_id": container.id if container is not None and action in (None, "start", "restart") else None,
        "changed_inputs": changes,
        "url": url,
        "users": {
            "added": users_plan.added if users_plan else [],
            "password_changed": users_plan.password_changed if users_plan else [],
            "removed": users_plan.removed if users_plan else [],
        },
        "diff": {"before": diff_view(old_inputs) if container is not None else {},
                 "after": diff_view(inputs) if action != "restart" else dict(diff_view(inputs), restarted=True)},
        "warnings": warnings,
    }
    if check_mode:
        return result

    if makes_data_dir:
        os.makedirs(params["data_dir"], mode=0o755)
    files = FileChanges()
    labels = container_labels(inputs)
    timeout = params["wait_timeout"]
    ca_path = params.get("tls_ca")
    try:
        if write_htpasswd:
            files.write(htpasswd_path, users_plan.content.encode("utf-8"), htpasswd_before.encode("utf-8") if htpasswd_before else None)
        if write_config:
            files.write(config_path, config_bytes, config_before)
        if action == "create":
            container = create_container(client, spec, labels)
            try:
                container.start()
                result["status"] = wait_until_ready(container, url, ca_path, timeout)
            except Exception:
                # Nothing ran before: leave nothing behind (the log lines are in the message).
                remove_container(container)
                raise
        elif action == "recreate":
            if container.status == "running" and is_local_engine(params.get("docker_host")):
                try_candidate(client, spec, labels, params["registry_tls"], ca_path, timeout)
            container, result["status"] = swap(client, container, spec, labels, url, ca_path, timeout, files.restore)
        elif action == "start":
            container.start()
            result["status"] = wait_until_ready(container, url, ca_path, timeout)
        elif action == "restart":
            container.restart(timeout=STOP_TIMEOUT)
            result["status"] = wait_until_ready(container, url, ca_path, timeout)
    except Exception:
        files.restore()
        raise
    result["container_id"] = container.id
    return result


# image_push: put local images into a registry under the names clients use, skipping what it holds


class ImagePushError(Exception):
    """A push problem worded for the operator: names the image, the registry and what to do."""


def registry_session(ca_path, username, password):
    """A requests session for the registry's API, verifying with the given CA (or the system's)."""
    if requests is None:
        raise ImagePushError("The Python package requests is missing on this host (Debian: python3-requests)")
    session = requests.Session()
    # Only what the options say: no CA bundle, proxy or .netrc from the environment (REQUESTS_CA_BUNDLE
    # would otherwise silently replace the registry's CA).
    session.trust_env = False
    session.verify = ca_path if ca_path else True
    if username:
        session.auth = (username, password or "")
    return session


def _registry_failure(registry, exc, ca_path):
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return ("Cannot verify the TLS certificate of registry %s with %s: %s. Give the CA that signed it as tls_ca "
                "(or install it at /etc/docker/certs.d/%s/ca.crt)." % (registry, ca_path or "the system trust store", text, registry))
    return "Cannot reach registry %s: %s" % (registry, text)


def remote_digest(session, scheme, registry, repository, tag, username):
    """The manifest digest of repository:tag in the registry, or None when it is absent.

    Returns "unknown" when the registry wants a token (Bearer) instead of basic auth: the
    engine knows how to get one, this check does not, so the image is pushed.
    """
    url = manifest_url(scheme, registry, repository, tag)
    try:
        answer = session.head(url, headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
    except requests.exceptions.RequestException as exc:
        raise ImagePushError(_registry_failure(registry, exc, session.verify if session.verify is not True else None)) from exc
    if answer.status_code == 404:
        return None
    if answer.status_code == 401:
        if answer.headers.get("WWW-Authenticate", "").lower().startswith("bearer"):
            return "unknown"
        if username:
            raise ImagePushError("Registry %s refused the user %s (HTTP 401 on %s): wrong username or password." % (registry, username, url))
        raise ImagePushError("Registry %s needs credentials (HTTP 401 on %s): give username and password." % (registry, url))
    if answer.status_code != 200:
        raise ImagePushError("Registry %s answered HTTP %d to HEAD %s" % (registry, answer.status_code, url))
    return answer.headers.get("Docker-Content-Digest")


def config_digest(session, scheme, registry, repository, reference):
    """The config digest of a single-image manifest (the image ID on the classic store), or None."""
    try:
        answer = session.get(manifest_url(scheme, registry, repository, reference), headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
        if answer.status_code != 200:
            return None
        return ((answer.json() or {}).get("config") or {}).get("digest")
    except (requests.exceptions.RequestException, ValueError, AttributeError):
        return None


def registry_has_image(session, scheme, registry, repository, tag, image, username):
    """(True/False, registry digest): whether repository:tag in the registry is this very image."""
    digest = remote_digest(session, scheme, registry, repository, tag, username)
    if digest is None or digest == "unknown":
        return False, None
    # The engine records the manifest digest of every push and pull: the cheap, usual proof.
    if repo_digest_matches(image.attrs.get("RepoDigests"), registry, repository, digest):
        return True, digest
    # A host that loaded the image from a bundle has no such record: compare what the manifest points at.
    if digest == image.id or config_digest(session, scheme, registry, repository, digest) == image.id:
        return True, digest
    return False, digest


def _push_stream(client, target_repository, tag, auth_config):
    last_digest = None
    for chunk in client.api.push(target_repository, tag=tag, auth_config=auth_config, stream=True, decode=True):
        if chunk.get("error") or chunk.get("errorDetail"):
            detail = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
            raise ImagePushError("Pushing %s:%s failed: %s" % (target_repository, tag, detail))
        aux = chunk.get("aux") or {}
        if aux.get("Digest"):
            last_digest = aux["Digest"]
    return last_digest


def push_images(client, params, check_mode):
    """Push each image under its name in the registry unless the registry already holds it; returns the result."""
    registry = normalize_registry(params["registry"])
    plan = []
    for source in params["images"]:
        repository, tag, target = target_reference(source, registry, params["mirror_namespace"])
        try:
            image = client.images.get(source)
        except ImageNotFound:
            raise ImagePushError("Image %s is not in this host's Docker Engine: load it first with fleet.images.image_load "
                                 "(bundle: <bundle dir>, images: [%s])." % (source, source)) from None
        plan.append({"source": source, "target": target, "repository": repository, "tag": tag, "image": image})

    ca_path = params.get("tls_ca")
    if not ca_path and os.path.isfile(certs_d_ca_path(registry)):
        ca_path = certs_d_ca_path(registry)
    scheme = "http" if params["insecure"] else "https"
    session = registry_session(ca_path, params.get("username"), params.get("password"))
    pushed, present_already = [], []
    for item in plan:
        present, digest = (False, None) if params["force"] else registry_has_image(
            session, scheme, registry, item["repository"], item["tag"], item["image"], params.get("username"))
        record = {"source": item["source"], "target": item["target"], "image_id": item["image"].id, "digest": digest}
        (present_already if present else pushed).append(record)

    if pushed and not check_mode:
        auth_config = None
        if params.get("username"):
            auth_config = {"username": params["username"], "password": params.get("password") or ""}
            try:
                client.login(username=params["username"], password=params.get("password") or "", registry=registry, reauth=True)
            except Exception as exc:  # APIError and friends: worded below with the registry and the user
                explanation = getattr(exc, "explanation", None) or str(exc)
                raise ImagePushError("Logging in to registry %s as %s failed: %s" % (registry, params["username"], explanation)) from exc
        by_source = {item["source"]: item for item in plan}
        for record in pushed:
            item = by_source[record["source"]]
            target_repository = "%s/%s" % (registry, item["repository"])
            item["image"].tag(target_repository, item["tag"])
            record["digest"] = _push_stream(client, target_repository, item["tag"], auth_config)
    return {
        "changed": bool(pushed),
        "registry": registry,
        "pushed": pushed,
        "present": present_already,
        "diff": {
            "before": {"present": sorted(r["target"] for r in present_already)},
            "after": {"present": sorted(r["target"] for r in present_already + pushed)},
        },
    }
