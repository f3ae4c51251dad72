# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""registry_deploy's work against a Docker Engine: checks first, then at most one recreate, then a health probe.

Every check that can fail on bad input (files, key/certificate pair, image, port) runs before a
running registry is touched, so a bad change leaves the old registry serving. The container
itself (ports, candidate, swap, health wait) is registry_container.py's.
"""

from __future__ import annotations

import calendar
import contextlib
import os
import ssl
import time
import traceback
from dataclasses import dataclass, field

from ansible_collections.fleet.images.plugins.module_utils.atomic_file import atomic_write
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    APIError,
    DockerException,
    RequestException,
    connect,
    docker_error_message,
)
from ansible_collections.fleet.images.plugins.module_utils.htpasswd import HtpasswdError, bcrypt_backend, plan_htpasswd, plan_of_contents
from ansible_collections.fleet.images.plugins.module_utils.registry import (
    LABEL_FINGERPRINT,
    RegistryConfigError,
    build_spec,
    changed_inputs,
    check_name,
    config_text,
    container_labels,
    default_config_path,
    default_data_dir,
    default_htpasswd_path,
    diff_view,
    fingerprint,
    parse_inputs_label,
    registry_url,
    render_config,
    sha256_text,
    spec_inputs,
)
from ansible_collections.fleet.images.plugins.module_utils.registry_container import (
    STOP_TIMEOUT,
    RegistryDeployError,
    check_port,
    clean_leftovers,
    create_container,
    engine_probe_host,
    is_local_engine,
    remove_container,
    swap,
    try_candidate,
    wait_until_ready,
)

try:
    from docker.errors import ImageNotFound
except ImportError:
    ImageNotFound = LookupError

try:
    from cryptography import x509
except ImportError:
    x509 = None


def read_text(path, what):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except FileNotFoundError:
        raise RegistryDeployError("%s %s does not exist" % (what, path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryDeployError("Cannot read %s %s: %s" % (what, path, exc)) from exc


def read_bytes(path):
    """A file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


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


def htpasswd_path_of(params):
    return params["htpasswd_path"] or default_htpasswd_path(params["name"])


def read_htpasswd(params):
    """The htpasswd file's text, or None: what the registry_deploy action plugin plans the users against."""
    path = htpasswd_path_of(params)
    return read_text(path, "htpasswd_path") if os.path.exists(path) else None


def plan_users(params, htpasswd_path):
    """(HtpasswdPlan or None, current file text or None).

    The registry_deploy action plugin hashes on the controller and passes its plan as _htpasswd; run
    without it (directly, as the integration tests do), the module plans with bcrypt itself.
    """
    if not params["users"]:
        return None, None
    existing = read_text(htpasswd_path, "htpasswd_path") if os.path.exists(htpasswd_path) else None
    given = params.get("_htpasswd")
    if given:
        if given.get("before") != existing:
            raise RegistryDeployError("%s changed while this task ran: run it again" % htpasswd_path)
        return plan_of_contents(existing, given["content"]), existing
    try:
        return plan_htpasswd(params["users"], existing, bcrypt_backend(), htpasswd_path, params["bcrypt_cost"]), existing
    except HtpasswdError as exc:
        raise RegistryDeployError(str(exc)) from exc


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


def remove(client, params, check_mode):
    container = clean_leftovers(client, params["name"], check_mode)
    result = {"changed": container is not None, "recreated": False, "container_id": container.id if container else None,
              "changed_inputs": [], "diff": {"before": {"container": params["name"] if container else None}, "after": {"container": None}}}
    if container is not None and not check_mode:
        remove_container(container)
    return result


def check_params(params):
    """The options with their defaults filled in; refuses a bad name, port, or passwords over plain HTTP."""
    check_name(params["name"])
    if not 1 <= params["port"] <= 65535:
        raise RegistryConfigError("port %d is not a TCP port (1-65535)" % params["port"])
    if params["users"] and not params["registry_tls"] and not params.get("allow_plain_http_auth"):
        raise RegistryConfigError(
            "registry %s: users with registry_tls=false would send every password in clear text over plain HTTP (basic auth). "
            "Serve TLS (registry_tls=true with tls_cert and tls_key), or set allow_plain_http_auth=true if the network between the "
            "clients and the registry is trusted." % params["name"]
        )
    params = dict(params)
    params["data_dir"] = params["data_dir"] or default_data_dir(params["name"])
    params["htpasswd_path"] = htpasswd_path_of(params)
    params["config_path"] = params.get("config_path") or default_config_path(params["name"])
    return params


@dataclass
class Plan:
    """What a deploy found and would do: computed in full (check mode stops here) before anything is touched."""

    params: dict
    users: object = None
    htpasswd_before: str = None
    config_bytes: bytes = b""
    config_before: bytes = None
    spec: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    container: object = None
    old_inputs: dict = None
    action: str = None
    warnings: list = field(default_factory=list)

    @property
    def write_htpasswd(self):
        return self.users is not None and self.users.content != self.htpasswd_before

    @property
    def write_config(self):
        return self.config_before != self.config_bytes


def plan_inputs(client, plan):
    """Files, users, image and rendered configuration: the inputs the container is to run with."""
    params = plan.params
    plan.users, plan.htpasswd_before = plan_users(params, params["htpasswd_path"])
    digests = {}
    if params["registry_tls"]:
        check_tls_pair(params["tls_cert"], params["tls_key"], plan.warnings)
        digests["tls_cert"] = sha256_text(read_text(params["tls_cert"], "tls_cert"))
        digests["tls_key"] = sha256_text(read_text(params["tls_key"], "tls_key"))
    if plan.users is not None:
        digests["htpasswd"] = sha256_text(plan.users.content)
    image_id = image_id_of(client, params["image"])
    rendered = render_config(params["config"], params["registry_tls"], plan.users is not None, params["delete_enabled"],
                             "%s registry" % params["name"], params.get("read_only", False), params.get("tls_min_version") or "1.2")
    plan.config_bytes = config_text(rendered).encode("utf-8")
    plan.config_before = read_bytes(params["config_path"])
    plan.spec = build_spec(params, image_id, params["config_path"], params["htpasswd_path"] if plan.users is not None else None)
    plan.inputs = spec_inputs(plan.spec, digests, [u["name"] for u in params["users"] or []], params["registry_tls"],
                              params["delete_enabled"], rendered, params["config"])


def choose_action(container, inputs, state):
    """create, recreate, restart, start or None (nothing to do to the container)."""
    if container is None:
        return "create"
    if container.labels.get(LABEL_FINGERPRINT) != fingerprint(inputs):
        return "recreate"
    if container.status == "restarting":
        return "restart"
    if container.status != "running":
        return "start"
    return "restart" if state == "restarted" else None


def plan_container(client, plan, check_mode):
    params = plan.params
    plan.container = clean_leftovers(client, params["name"], check_mode)
    plan.old_inputs = parse_inputs_label(plan.container.labels) if plan.container is not None else None
    plan.action = choose_action(plan.container, plan.inputs, params["state"])
    if plan.action in ("create", "recreate", "start"):
        check_port(client, plan.container, params["bind_address"], params["port"], is_local_engine(params.get("docker_host")))
    if plan.action == "recreate" and plan.old_inputs is None:
        plan.warnings.append("container %s exists but was not created by fleet.images.registry_deploy: it is replaced "
                             "(its anonymous volumes are kept)" % params["name"])


def plan_result(plan, url):
    """The module result the plan stands for (check mode returns it as it is)."""
    users = plan.users
    action, container = plan.action, plan.container
    return {
        "changed": bool(action or plan.write_htpasswd or plan.write_config or not os.path.isdir(plan.params["data_dir"])),
        "recreated": action == "recreate",
        "action": action or "none",
        "container_id": container.id if container is not None and action in (None, "start", "restart") else None,
        "changed_inputs": changed_inputs(plan.old_inputs, plan.inputs) if action in ("create", "recreate") else [],
        "url": url,
        "users": {
            "added": users.added if users else [],
            "password_changed": users.password_changed if users else [],
            "removed": users.removed if users else [],
        },
        "diff": {"before": diff_view(plan.old_inputs) if container is not None else {},
                 "after": diff_view(plan.inputs) if action != "restart" else dict(diff_view(plan.inputs), restarted=True)},
        "warnings": plan.warnings,
    }


def create(client, plan, labels, url, ca_path, timeout):
    container = create_container(client, plan.spec, labels)
    try:
        container.start()
        return container, wait_until_ready(container, url, ca_path, timeout)
    except Exception:
        # Nothing ran before: leave nothing behind (the log lines are in the message).
        remove_container(container)
        raise


def apply(client, plan, url):
    """Write the files and bring the container to the plan; returns (container, HTTP status or None)."""
    params, container = plan.params, plan.container
    timeout, ca_path = params["wait_timeout"], params.get("tls_ca")
    labels = container_labels(plan.inputs)
    if not os.path.isdir(params["data_dir"]):
        os.makedirs(params["data_dir"], mode=0o755)
    files = FileChanges()
    try:
        if plan.write_htpasswd:
            files.write(params["htpasswd_path"], plan.users.content.encode("utf-8"),
                        plan.htpasswd_before.encode("utf-8") if plan.htpasswd_before else None)
        if plan.write_config:
            files.write(params["config_path"], plan.config_bytes, plan.config_before)
        if plan.action == "create":
            return create(client, plan, labels, url, ca_path, timeout)
        if plan.action == "recreate":
            if container.status == "running" and is_local_engine(params.get("docker_host")):
                try_candidate(client, plan.spec, labels, params["registry_tls"], ca_path, timeout)
            return swap(client, container, plan.spec, labels, url, ca_path, timeout, files.restore)
        if plan.action == "start":
            container.start()
        elif plan.action == "restart":
            container.restart(timeout=STOP_TIMEOUT)
        return container, wait_until_ready(container, url, ca_path, timeout) if plan.action else None
    except Exception:
        files.restore()
        raise


def deploy(client, params, check_mode):
    """Bring the registry container to the wanted state; returns the module result (its warnings under "warnings")."""
    plan = Plan(check_params(params))
    plan_inputs(client, plan)
    plan_container(client, plan, check_mode)
    url = registry_url(engine_probe_host(params.get("docker_host"), params["bind_address"]), params["port"], params["registry_tls"])
    result = plan_result(plan, url)
    if check_mode:
        return result
    container, status = apply(client, plan, url)
    if status is not None:
        result["status"] = status
    result["container_id"] = container.id
    return result


def run_module(module):
    """registry_deploy's module run: the htpasswd read for the action plugin, or the deploy (or removal) and its result."""
    params, name = module.params, module.params["name"]
    try:
        if params["_read_htpasswd"]:
            module.exit_json(changed=False, htpasswd=read_htpasswd(params))
        client = connect(module)
        result = (remove if params["state"] == "absent" else deploy)(client, params, module.check_mode)
    except RegistryDeployError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except RegistryConfigError as exc:
        module.fail_json(msg=str(exc))
    except (APIError, DockerException, RequestException) as exc:
        module.fail_json(msg=docker_error_message(exc, "deploying the registry container %s" % name), exception=traceback.format_exc())
    except OSError as exc:
        module.fail_json(msg="While deploying the registry container %s: %s" % (name, exc), exception=traceback.format_exc())
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)
