# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_push: put local images into a registry under the names clients use, skipping what it holds."""

from __future__ import annotations

import os

from ansible_collections.fleet.images.plugins.module_utils.image_result import any_changed, image_result
from ansible_collections.fleet.images.plugins.module_utils.registry import (
    certs_d_ca_path,
    normalize_registry,
    repo_digest_matches,
    target_reference,
)
from ansible_collections.fleet.images.plugins.module_utils.registry_api import (
    RegistryApiError,
    api_session,
    config_digest,
    remote_digest,
)

try:
    from docker.errors import ImageNotFound
except ImportError:
    ImageNotFound = LookupError


class ImagePushError(Exception):
    """A push problem worded for the operator: names the image, the registry and what to do."""


def registry_has_image(session, scheme, registry, repository, tag, image):
    """(True/False, registry digest): whether repository:tag in the registry is this very image."""
    try:
        digest = remote_digest(session, scheme, registry, repository, tag)
    except RegistryApiError as exc:
        raise ImagePushError(str(exc)) from exc
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
    """Push through the engine; returns (the manifest digest, the layer bytes the engine reported uploading)."""
    last_digest, sent = None, {}
    for chunk in client.api.push(target_repository, tag=tag, auth_config=auth_config, stream=True, decode=True):
        if chunk.get("error") or chunk.get("errorDetail"):
            detail = (chunk.get("errorDetail") or {}).get("message") or chunk.get("error")
            raise ImagePushError("Pushing %s:%s failed: %s" % (target_repository, tag, detail))
        if chunk.get("status") == "Pushing":
            sent[chunk.get("id")] = max(sent.get(chunk.get("id"), 0), (chunk.get("progressDetail") or {}).get("current") or 0)
        aux = chunk.get("aux") or {}
        if aux.get("Digest"):
            last_digest = aux["Digest"]
    return last_digest, sum(sent.values())


def plan_pushes(client, params, registry):
    """One item per image: its source and target names and the engine's image; fails on an image the engine lacks."""
    plan = []
    for source in params["images"]:
        repository, tag, target = target_reference(source, registry, params["mirror_namespace"])
        try:
            image = client.images.get(source)
        except ImageNotFound:
            raise ImagePushError("Image %s is not in this host's Docker Engine: load it first with fleet.images.image_load "
                                 "(bundle: <bundle dir>, images: [%s])." % (source, source)) from None
        plan.append({"source": source, "target": target, "repository": repository, "tag": tag, "image": image})
    return plan


def registry_session(params, registry):
    ca_path = params.get("tls_ca")
    if not ca_path and os.path.isfile(certs_d_ca_path(registry)):
        ca_path = certs_d_ca_path(registry)
    try:
        return api_session(ca_path, params.get("username"), params.get("password"))
    except RegistryApiError as exc:
        raise ImagePushError(str(exc)) from exc


def login(client, params, registry):
    """The engine's auth_config for the push, after a login through the engine; None without a username."""
    if not params.get("username"):
        return None
    auth_config = {"username": params["username"], "password": params.get("password") or ""}
    try:
        client.login(registry=registry, reauth=True, **auth_config)
    except Exception as exc:  # APIError and friends: worded below with the registry and the user
        explanation = getattr(exc, "explanation", None) or str(exc)
        raise ImagePushError("Logging in to registry %s as %s failed: %s" % (registry, params["username"], explanation)) from exc
    return auth_config


def push_images(client, params, check_mode):
    """Push each image under its name in the registry unless the registry already holds it; returns the result."""
    registry = normalize_registry(params["registry"])
    plan = plan_pushes(client, params, registry)
    scheme = "http" if params["insecure"] else "https"
    session = registry_session(params, registry)
    items = []
    for item in plan:
        present, digest = (False, None) if params["force"] else registry_has_image(
            session, scheme, registry, item["repository"], item["tag"], item["image"])
        # in check mode, what would move is at most the image itself (the engine skips layers the registry holds)
        items.append(image_result(item["source"], [item["source"]], item["image"].id, "unchanged" if present else "pushed",
                                  0 if present or not check_mode else item["image"].attrs.get("Size") or 0,
                                  target=item["target"], digest=digest))
    to_push = [(record, item) for record, item in zip(items, plan) if record["action"] == "pushed"]
    if to_push and not check_mode:
        auth_config = login(client, params, registry)
        for record, item in to_push:
            target_repository = "%s/%s" % (registry, item["repository"])
            item["image"].tag(target_repository, item["tag"])
            record["digest"], record["bytes"] = _push_stream(client, target_repository, item["tag"], auth_config)
    held = sorted(record["target"] for record in items if record["action"] == "unchanged")
    return {
        "changed": any_changed(items),
        "registry": registry,
        "images": items,
        "diff": {"before": {"present": held}, "after": {"present": sorted(record["target"] for record in items)}},
    }
