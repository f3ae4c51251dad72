# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""image_prune against one engine: list images and containers, remove what the policy lets go.

The decision is prune_policy.decide (pure). Removal never forces: an image is untagged tag by tag
and its last name removed as ``docker rmi NAME`` does, so the engine itself refuses an image a
container uses, and removes untagged parents only as it always does. A container created between
the listing and the removal makes the engine refuse (HTTP 409): the image is then reported kept,
and the tags already taken off it are put back.
"""

from __future__ import annotations

import time
import traceback

from ansible.module_utils.common.text.formatters import bytes_to_human

from ansible_collections.fleet.images.plugins.module_utils import bundle as bundle_file
from ansible_collections.fleet.images.plugins.module_utils import prune_policy
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    APIError,
    DockerConnectionError,
    DockerException,
    build_client,
    docker_error_message,
)
from ansible_collections.fleet.images.plugins.module_utils.image_result import image_result

CONFLICT = 409
NOT_FOUND = 404


def container_users(client):
    """{image ID: "NAME (running)" or "NAME (stopped)"} for every container, running or not, by the image ID it runs."""
    users = {}
    for container in client.api.containers(all=True):
        names = [name.lstrip("/") for name in container.get("Names") or []] or [container["Id"][:12]]
        state = "running" if container.get("State") == "running" else "stopped"
        users.setdefault(container.get("ImageID"), []).append("%s (%s)" % (names[0], state))
    return {image_id: ", ".join(sorted(names)) for image_id, names in users.items()}


def list_images(client):
    """Every top-level image of the engine as a prune_policy record (inspect plus history sizes)."""
    records = []
    for summary in client.api.images(all=False):
        try:
            attrs = client.api.inspect_image(summary["Id"])
            history = client.api.history(summary["Id"])
        except APIError as exc:
            if getattr(exc, "status_code", None) == NOT_FOUND:  # removed meanwhile by someone else
                continue
            raise
        records.append(prune_policy.describe_image(attrs, [entry.get("Size") or 0 for entry in reversed(history)]))
    return records


def keep_entries(params):
    """The bundle entries whose images stay: keep_images, then every image of each keep_bundles manifest."""
    entries = list(params["keep_images"] or [])
    for index, entry in enumerate(entries):
        prune_policy.check_keep_entry(entry, index)
    for path in params["keep_bundles"] or []:
        entries += bundle_file.load_manifest(path)["images"]
    return entries


def build_policy(params):
    """The policy dict prune_policy.decide reads, from the module's options (PolicyError / BundleError on bad input)."""
    if params["keep_newest"] < 0:
        raise prune_policy.PolicyError("keep_newest must be 0 or more, got %d" % params["keep_newest"])
    keep_names = set()
    for name in params["keep_references"] or []:
        keep_names.update((name, image_ref.normalize(name)))
    return {
        "keep_images": keep_entries(params),
        "keep_names": keep_names,
        "repositories": list(params["repositories"] or ["*"]),
        "dangling": params["dangling"],
        "keep_newest": params["keep_newest"],
        "keep_newer_than": prune_policy.parse_age(params["keep_newer_than"]),
        "keep_newer_than_text": params["keep_newer_than"],
    }


def _restore_tags(client, image_id, tags):
    for tag in tags:
        client.api.tag(image_id, *image_ref.repository_and_tag(tag))


def remove_image(client, image):
    """Remove one image without force; returns None when it is gone, else why the engine kept it."""
    names = list(image["tags"]) or [image["id"]]
    untagged = []
    try:
        for name in names[:-1]:
            client.api.remove_image(name, force=False, noprune=False)
            untagged.append(name)
        client.api.remove_image(names[-1], force=False, noprune=False)
    except APIError as exc:
        status = getattr(exc, "status_code", None)
        if status == NOT_FOUND:
            return None
        if status != CONFLICT:
            raise
        _restore_tags(client, image["id"], untagged)
        return "in use: the engine refused to remove it (%s)" % (getattr(exc, "explanation", None) or exc)
    return None


def apply(client, images, reasons):
    """Remove every image whose reason is None, in report order; returns the reasons after the engine's answers."""
    outcome = dict(reasons)
    for image in prune_policy.report_order(images):
        if reasons[image["id"]] is None:
            outcome[image["id"]] = remove_image(client, image)
    return outcome


def report(images, reasons):
    """The `images` items and the total bytes freed."""
    removed = {image["id"] for image in images if reasons[image["id"]] is None}
    freed = prune_policy.freed_bytes(images, removed)
    items = []
    for image in prune_policy.report_order(images):
        names = image["references"] or [image["id"]]
        action = "removed" if image["id"] in removed else "kept"
        items.append(image_result(names[0], names, image["id"], action, 0, reason=reasons[image["id"]],
                                  freed=freed.get(image["id"], 0), size=image["size"]))
    return items, sum(freed.values())


def plan(client, policy, now=None):
    """(images, {image id: reason to keep or None}) for the engine as it is now."""
    images = list_images(client)
    return images, prune_policy.decide(images, policy, container_users(client), time.time() if now is None else now)


def execute(client, images, reasons, check_mode):
    """Remove what the plan lets go (unless check mode); returns the module's result."""
    if not check_mode:
        reasons = apply(client, images, reasons)
    items, freed = report(images, reasons)
    removed = sum(1 for item in items if item["action"] == "removed")
    return {
        "changed": removed > 0,
        "images": items,
        "bytes_freed": freed,
        "msg": "%s %d image(s), %s freed; kept %d" % (
            "would remove" if check_mode else "removed", removed, bytes_to_human(freed), len(items) - removed),
    }


def run_module(module):
    """image_prune: check the options, connect, plan, remove, and exit or fail the module."""
    try:
        policy = build_policy(module.params)
    except (prune_policy.PolicyError, bundle_file.BundleError) as exc:
        module.fail_json(msg=str(exc))
    try:
        client = build_client(module.params)
        images, reasons = plan(client, policy)
        result = execute(client, images, reasons, module.check_mode)
    except DockerConnectionError as exc:
        module.fail_json(msg=str(exc))
    except DockerException as exc:
        module.fail_json(msg=docker_error_message(exc, "removing unneeded images"), exception=traceback.format_exc())
    module.exit_json(**result)
