# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pulling a bundle's images from the site registry: the logic behind image_pull.

An image is pulled under the name the registry role pushed it as (registry.target_reference),
must arrive with the bundle's identity, and is then tagged as the bundle names it. Whether it is
already present is decided as image_load decides it (image_archive.plan_load).
"""

from __future__ import annotations

import traceback

from ansible_collections.fleet.images.plugins.module_utils import image_archive, platform, registry
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    DockerConnectionError,
    DockerException,
    build_client,
    docker_error_message,
    docker_host_from,
)
from ansible_collections.fleet.images.plugins.module_utils.engine_io import TransferError, inspect_image, pull_image
from ansible_collections.fleet.images.plugins.module_utils.image_result import any_changed, image_result


def entry_problem(image):
    """What is wrong with one `images` entry, or None."""
    references, tags, image_id = image.get("references"), image.get("tags"), image.get("image_id")
    if not isinstance(references, list) or not references or not all(isinstance(item, str) for item in references):
        return "needs references: a non-empty list of image references (as bundle_info returns them)"
    if not isinstance(tags, list) or not all(isinstance(item, str) and "@" not in item for item in tags):
        return "%s needs tags: a list of name:tag references" % references[0]
    if not isinstance(image_id, str) or not image_id.startswith("sha256:"):
        return "%s needs image_id: the sha256:... ID the bundle records" % references[0]
    return None


def expected_bytes(image):
    """What a pull would move, as the bundle entry records it: its layer blobs (version 2) or its tarball (version 1)."""
    if isinstance(image.get("layers"), list):
        return sum(layer.get("size") or 0 for layer in image["layers"] if isinstance(layer, dict))
    return image.get("size") if isinstance(image.get("size"), int) else 0


def tag_all(client, image_id, tags):
    for bundle_tag in tags:
        client.api.tag(image_id, *image_ref.repository_and_tag(bundle_tag))


def pull_checked(client, source, image, reference, auth, engine_name):
    """Pull `source` and return (its image ID, which must be the bundle's, bytes downloaded); a stranger is removed again."""
    identity = image_archive.identity_digests(image)
    # streamed, so the registry's own error and an engine that stops half way are both reported as such
    downloaded = pull_image(client, source, None, engine_name, auth=auth)
    attrs = inspect_image(client, source)
    got = attrs["Id"] if attrs else None
    if got not in identity:
        # Leave nothing that looks like the bundle's image behind.
        if attrs:
            client.api.remove_image(source)
        raise TransferError("the site registry served %s as %s, but the bundle holds %s for %s: was another image pushed under "
                            "that name? Push the bundle again (registry role)." % (source, got, " or ".join(identity), reference))
    return got, downloaded


def pull_one(client, image, site_registry, mirror_namespace, auth, check_mode, engine_name="the engine"):
    """Get one image onto the engine; returns its `images` item (action pulled, tagged or unchanged)."""
    reference, references = image["references"][0], image["references"]
    action, present_id, tags_to_set = image_archive.plan_load(image, lambda name: inspect_image(client, name))
    if action == "present":
        return image_result(reference, references, present_id, "unchanged", 0)
    if action == "tag":
        if not check_mode:
            tag_all(client, present_id, tags_to_set)
        return image_result(reference, references, present_id, "tagged", 0, tags=tags_to_set)
    # The same name the registry role pushed the image under (module_utils/registry.py).
    source = registry.target_reference(reference, site_registry, mirror_namespace)[2]
    if check_mode:
        # what would move is known to the engine only while it pulls: the bundle's record of the image's size
        return image_result(reference, references, image["image_id"], "pulled", expected_bytes(image), source=source, tags=tags_to_set)
    image_id, downloaded = pull_checked(client, source, image, reference, auth, engine_name)
    tag_all(client, image_id, tags_to_set)
    if source not in tags_to_set:
        client.api.remove_image(source, noprune=True)
    return image_result(reference, references, image_id, "pulled", downloaded, source=source, tags=tags_to_set)


def run_module(module):
    """image_pull: check the entries, pull each image, and exit or fail the module."""
    params = module.params
    auth = {"username": params["username"], "password": params["password"]} if params["username"] else None
    for index, image in enumerate(params["images"]):
        problem = entry_problem(image)
        if problem:
            module.fail_json(msg="images[%d]: %s" % (index, problem))
    try:
        client = build_client(params)
    except DockerConnectionError as exc:
        module.fail_json(msg=str(exc))
    result = {"images": []}
    info = client.info() if params["platform_mismatch"] != "load" else {}
    for image in params["images"]:
        refused = platform.verdict(image, info, params["platform_mismatch"], docker_host_from(params))
        if refused and refused[0] == "failed":
            module.fail_json(msg=refused[1], **result)
        if refused:
            result["images"].append(image_result(image["references"][0], image["references"], None, "unchanged", 0, reason=refused[1]))
            continue
        try:
            item = pull_one(client, image, params["registry"], params["mirror_namespace"], auth, module.check_mode, docker_host_from(params))
        except (registry.RegistryConfigError, TransferError) as exc:
            module.fail_json(msg=str(exc), **result)
        except DockerException as exc:
            module.fail_json(msg=docker_error_message(exc, "pulling %s from %s" % (image["references"][0], params["registry"])),
                             exception=traceback.format_exc(), **result)
        result["images"].append(item)
    module.exit_json(changed=any_changed(result["images"]), **result)
