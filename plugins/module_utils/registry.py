# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the site registry: container spec, its fingerprint, configuration, URLs, image names.

Nothing here talks to Docker; registry_engine.py does, with these functions deciding what to do.

How the container is configured: the module renders distribution's whole configuration into a
root-only file (mode 0600) that is mounted read-only and given as the `serve` argument, so it works
the same with registry:2, registry:3 and the lab's image, whatever config.yml the image carries,
and no setting (http.secret, storage keys) sits in the container's environment or labels.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re

from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref

CONTAINER_PORT = 5000
DATA_MOUNT = "/var/lib/registry"
CERT_MOUNT = "/certs/tls.crt"
KEY_MOUNT = "/certs/tls.key"
HTPASSWD_MOUNT = "/auth/htpasswd"
CONFIG_MOUNT = "/etc/fleet-images/registry/config.yml"
LABEL_MANAGED = "fleet.images.registry.managed"
LABEL_FINGERPRINT = "fleet.images.registry.fingerprint"
LABEL_INPUTS = "fleet.images.registry.inputs"
DEFAULT_CONFIG_ROOT = "/etc/fleet-images/registry"
DEFAULT_DATA_ROOT = "/var/lib/fleet-images/registry"
HOST_PORT_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$")


class RegistryConfigError(Exception):
    """An option value the registry cannot run with; the message names the option."""


TLS_VERSIONS = {"1.2": "tls1.2", "1.3": "tls1.3"}
# Keys of the storage section that are not a storage driver.
STORAGE_SETTINGS = ("maintenance", "cache", "delete", "redirect", "tag")
# Configuration paths that belong to module options, with the option to use instead.
MANAGED_PATHS = {
    ("http", "addr"): "port and bind_address",
    ("http", "tls"): "registry_tls, tls_cert, tls_key and tls_min_version",
    ("auth",): "users",
    ("storage", "delete"): "delete_enabled",
    ("storage", "maintenance", "readonly"): "read_only",
}


def _check_user_config(config, path=()):
    """Refuse keys the module manages and values distribution cannot take; the message names the key."""
    for key, value in (config or {}).items():
        where = path + (str(key),)
        dotted = ".".join(where)
        if not isinstance(key, str) or not key:
            raise RegistryConfigError("config.%s: keys must be non-empty strings" % dotted)
        for managed, option in MANAGED_PATHS.items():
            if where[:len(managed)] == managed:
                raise RegistryConfigError("config.%s is set by the module from %s: use that option instead" % (dotted, option))
        if value is None:
            raise RegistryConfigError("config.%s has no value" % dotted)
        if isinstance(value, dict):
            _check_user_config(value, where)
        elif not isinstance(value, (str, bool, int, float, list)):
            raise RegistryConfigError("config.%s: %r cannot be passed to the registry (expected a string, number, boolean, list "
                                      "or dict)" % (dotted, value))


def _merge(base, extra):
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render_config(config, tls, auth, delete_enabled, realm, read_only=False, tls_min_version="1.2"):
    """The whole distribution configuration: the module's settings with the user's `config` merged in.

    It goes into a root-only file mounted read-only, never into the environment: values such as
    http.secret or storage keys must not be readable with `docker inspect`.
    """
    _check_user_config(config)
    if tls_min_version not in TLS_VERSIONS:
        raise RegistryConfigError("tls_min_version %r is not one of %s" % (tls_min_version, ", ".join(sorted(TLS_VERSIONS))))
    storage = {"delete": {"enabled": bool(delete_enabled)}}
    user_storage = (config or {}).get("storage") or {}
    if not any(key not in STORAGE_SETTINGS for key in user_storage):
        # No storage driver given: the data directory mounted at DATA_MOUNT.
        storage["filesystem"] = {"rootdirectory": DATA_MOUNT}
    if read_only:
        # Writes refused (HTTP 405); no upload purging on storage another registry writes to.
        storage["maintenance"] = {"readonly": {"enabled": True}, "uploadpurging": {"enabled": False}}
    http = {"addr": ":%d" % CONTAINER_PORT}
    if tls:
        http["tls"] = {"certificate": CERT_MOUNT, "key": KEY_MOUNT, "minimumtls": TLS_VERSIONS[tls_min_version]}
    rendered = {"version": "0.1", "storage": storage, "http": http}
    if auth:
        rendered["auth"] = {"htpasswd": {"realm": realm, "path": HTPASSWD_MOUNT}}
    return _merge(rendered, config or {})


def config_text(rendered):
    """The configuration file's content (JSON, which distribution's YAML parser reads), stable for a given config."""
    return json.dumps(rendered, sort_keys=True, indent=2) + "\n"


def flatten_config(config, _path=()):
    """{"log": {"level": "info"}} → {"log.level": "info"}."""
    flat = {}
    for key, value in (config or {}).items():
        path = _path + (str(key),)
        if isinstance(value, dict) and value:
            flat.update(flatten_config(value, path))
        else:
            flat[".".join(path)] = value
    return flat


def is_wildcard(address):
    return address in ("", "0.0.0.0", "::", "[::]")


def probe_host(bind_address):
    """The address to reach the registry from its own host: loopback when it listens on every address."""
    if bind_address in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind_address in ("::", "[::]"):
        return "::1"
    return bind_address


def host_port(host, port):
    """host:port, with brackets around an IPv6 address."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return "[%s]:%d" % (host, port)
    except ValueError:
        pass
    return "%s:%d" % (host, port)


def registry_url(host, port, tls=True):
    return "%s://%s" % ("https" if tls else "http", host_port(host, port))


def sha256_text(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_spec(params, image_id, config_path, htpasswd_path=None):
    """What the container is created with, from the module's options and the image's ID."""
    mounts = [{"source": params["data_dir"], "target": DATA_MOUNT, "read_only": False},
              {"source": config_path, "target": CONFIG_MOUNT, "read_only": True}]
    if params["registry_tls"]:
        mounts.append({"source": params["tls_cert"], "target": CERT_MOUNT, "read_only": True})
        mounts.append({"source": params["tls_key"], "target": KEY_MOUNT, "read_only": True})
    if htpasswd_path:
        mounts.append({"source": htpasswd_path, "target": HTPASSWD_MOUNT, "read_only": True})
    return {
        "name": params["name"],
        "image": params["image"],
        "image_id": image_id,
        "bind_address": params["bind_address"],
        "port": params["port"],
        "mounts": mounts,
        "command": ["serve", CONFIG_MOUNT],
        "restart_policy": params["restart_policy"],
    }


def spec_inputs(spec, file_digests, users, tls, delete_enabled, rendered_config, user_config=None):
    """Everything the container runs with, secrets reduced to digests: stored as a label, compared next run.

    `file_digests` maps tls_cert, tls_key and htpasswd to the sha256 of their content: a file
    replaced in place (certificate renewal, password change) changes the fingerprint even though
    its path does not. Configuration values that come from the user's `config` may hold secrets
    (storage credentials, http.secret): only a digest of them is kept.
    """
    secret_paths = set(flatten_config(user_config))
    inputs = {
        "image": spec["image"],
        "image_id": spec["image_id"],
        "listen": host_port(spec["bind_address"] or "0.0.0.0", spec["port"]),
        "data_dir": spec["mounts"][0]["source"],
        "restart_policy": spec["restart_policy"],
        "tls": bool(tls),
        "delete_enabled": bool(delete_enabled),
        "users": sorted(users),
        "mounts": ["%s:%s:%s" % (m["source"], m["target"], "ro" if m["read_only"] else "rw") for m in spec["mounts"]],
        "config": {path: sha256_text(json.dumps(value, sort_keys=True))[:23] if path in secret_paths else value
                   for path, value in flatten_config(rendered_config).items()},
    }
    for name in ("tls_cert", "tls_key", "htpasswd"):
        if file_digests.get(name):
            inputs[name] = file_digests[name]
    return inputs


def fingerprint(inputs):
    return sha256_text(json.dumps(inputs, sort_keys=True, separators=(",", ":")))


def changed_inputs(old, new):
    """Names of the inputs that differ, configuration keys as config.KEY; None for `old` means no record."""
    if old is None:
        return ["container"]
    changed = []
    for key in sorted(set(old) | set(new)):
        if key in ("env", "config"):
            old_env, new_env = old.get(key) or {}, new.get(key) or {}
            changed.extend("%s.%s" % (key, name) for name in sorted(set(old_env) | set(new_env)) if old_env.get(name) != new_env.get(name))
        elif old.get(key) != new.get(key):
            changed.append(key)
    return changed


def diff_view(inputs):
    """Inputs as diff mode shows them. They hold no secret: files and variable values are digests."""
    return json.loads(json.dumps(inputs, sort_keys=True)) if inputs else {}


def parse_inputs_label(labels):
    """The inputs recorded on an existing container, or None when it carries none (or a broken one)."""
    text = (labels or {}).get(LABEL_INPUTS)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def container_labels(inputs):
    return {
        LABEL_MANAGED: "fleet.images.registry_deploy",
        LABEL_FINGERPRINT: fingerprint(inputs),
        LABEL_INPUTS: json.dumps(inputs, sort_keys=True, separators=(",", ":")),
    }


def default_htpasswd_path(name):
    return "%s/%s/htpasswd" % (DEFAULT_CONFIG_ROOT, name)


def default_config_path(name):
    return "%s/%s/config.yml" % (DEFAULT_CONFIG_ROOT, name)


def default_data_dir(name):
    return "%s/%s" % (DEFAULT_DATA_ROOT, name)


def check_name(name):
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name or ""):
        raise RegistryConfigError("name %r is not a valid container name (letters, digits, '_', '.', '-')" % (name,))


# Image references


def normalize_registry(registry):
    """host[:port] of a registry given as host:port or as a URL; rejects anything with a path."""
    value = (registry or "").strip()
    for scheme in ("https://", "http://"):
        if value.startswith(scheme):
            value = value[len(scheme):]
    value = value.rstrip("/")
    if not value or "/" in value or not HOST_PORT_RE.match(value):
        raise RegistryConfigError("registry %r must be host or host:port (as in /etc/docker/certs.d/HOST:PORT)" % (registry,))
    return value


def target_reference(reference, registry, mirror_namespace=False):
    """The name an image gets in the site registry: (repository, tag, "registry/repository:tag").

    The source registry's host is dropped: `registry.example.com/team/app:2.1` becomes
    `REGISTRY/team/app:2.1`. Docker Hub's official images keep their short name
    (`nginx:1.25` → `REGISTRY/nginx:1.25`) unless `mirror_namespace` is set: then they go under
    `library/` (`REGISTRY/library/nginx:1.25`), the path a Docker Engine asks a `registry-mirrors`
    entry for, so hosts keep pulling `nginx:1.25` unchanged.
    """
    registry = normalize_registry(registry)
    try:
        domain, path, tag, digest = image_ref.parse(reference)
    except image_ref.InvalidReference as exc:
        raise RegistryConfigError(str(exc)) from None
    if tag is None:
        if digest is not None:
            raise RegistryConfigError("image reference %r has a digest but no tag: a registry push needs a tag" % reference)
        tag = "latest"
    if mirror_namespace and image_ref.is_docker_hub(domain) and "/" not in path:
        path = "library/" + path
    elif not mirror_namespace and image_ref.is_docker_hub(domain) and path.startswith("library/"):
        path = path[len("library/"):]
    return path, tag, "%s/%s:%s" % (registry, path, tag)


def manifest_url(scheme, registry, repository, tag):
    return "%s://%s/v2/%s/manifests/%s" % (scheme, registry, repository, tag)


MANIFEST_ACCEPT = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])


def certs_d_ca_path(registry):
    """Where the Docker Engine looks for a registry's CA."""
    return "/etc/docker/certs.d/%s/ca.crt" % normalize_registry(registry)


def repo_digest_matches(repo_digests, registry, repository, digest):
    """True when the engine recorded `digest` for registry/repository (set by a previous push or pull)."""
    wanted = "%s/%s@%s" % (normalize_registry(registry), repository, digest)
    return wanted in (repo_digests or [])
