# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which images a host may lose: the pure decision behind image_prune (no engine here).

An image (one image ID, with all its tags) is kept, for the first reason that applies:
a container (running or stopped) uses it; it is an image of a bundle the host is meant to hold
(the identity rule of image_load: image_archive.is_same_image); a keep reference names it; it is the
parent of a kept image; one of its repositories is outside `repositories`; it is untagged and
`dangling` is off; it is one of the `keep_newest` newest images of one of its repositories; it is
newer than `keep_newer_than`. Every other image is removed. "Newest" and "newer" go by the image's
creation time (as `docker image prune --filter until=` does).

Bytes freed are counted per layer: a layer (by chain ID, as the engine stores it) is freed when no
image that stays uses it, and is counted once, for the first removed image in report order.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re

from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.image_archive import identity_digests, is_same_image, normalized_time

AGE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class PolicyError(Exception):
    """An option of the policy is unusable; the message names it and what is expected."""


def parse_age(text):
    """Seconds in an age such as ``36h``, ``7d``, ``2w``, ``90m``, ``600`` (seconds); None for none."""
    if text in (None, ""):
        return None
    match = AGE.match(str(text))
    if not match:
        raise PolicyError("keep_newer_than %r is not an age: give a whole number with an optional unit s, m, h, d or w "
                          "(for example 36h or 7d)" % (text,))
    return int(match.group(1)) * AGE_UNITS[match.group(2)]


def check_keep_entry(entry, index):
    """Refuse a keep entry that identifies no image: it would silently protect nothing."""
    if not isinstance(entry, dict):
        raise PolicyError("keep_images[%d] must be an image entry (a dict, as bundle_info returns it), got %r" % (index, entry))
    if not identity_digests(entry) and not entry.get("config_fingerprint"):
        names = ", ".join(entry.get("references") or []) or "no reference"
        raise PolicyError("keep_images[%d] (%s) records no image identity (image_id, config_digest, manifest_digest or "
                          "config_fingerprint): pass the bundle's entries as bundle_info returns them" % (index, names))


def repository_of(name):
    """The repository of a tag or digest reference, as the engine lists it (``nginx``, ``reg:5000/team/app``)."""
    return image_ref.split(image_ref.familiar(name))[0]


def chain_ids(diff_ids):
    """The engine's layer IDs: chain[0] = diff[0], chain[i] = sha256(chain[i-1] + " " + diff[i])."""
    chains = []
    for diff_id in diff_ids:
        chain = diff_id if not chains else "sha256:" + hashlib.sha256(("%s %s" % (chains[-1], diff_id)).encode()).hexdigest()
        chains.append(chain)
    return chains


def layer_sizes(layer_count, history_sizes):
    """The size of each layer, from the image history's sizes (oldest first).

    The history has one entry per layer plus size-0 entries for steps that made no layer; a size
    above 0 is always a layer. Size-0 entries are given to layers first, as long as enough entries
    are left for the layers still to come: only a layer of size 0 can be placed wrongly, and it counts 0.
    """
    sizes = []
    for index, size in enumerate(history_sizes):
        if len(sizes) == layer_count:
            break
        later_layers = sum(1 for later in history_sizes[index + 1:] if later > 0)
        if size > 0 or layer_count - len(sizes) > later_layers:
            sizes.append(size)
    return sizes + [0] * (layer_count - len(sizes))


def _seconds(created):
    """Seconds since the epoch, with the fraction (images made within one second still have an order)."""
    try:
        return float(normalized_time(created) or 0)
    except (TypeError, ValueError):
        return 0.0


def describe_image(attrs, history_sizes):
    """The record the policy works on, from the engine's inspect answer and the image's history sizes."""
    tags = [tag for tag in attrs.get("RepoTags") or [] if tag != "<none>:<none>"]
    digests = [digest for digest in attrs.get("RepoDigests") or [] if not digest.startswith("<none>@")]
    diff_ids = list((attrs.get("RootFS") or {}).get("Layers") or [])
    names = tags or digests
    return {
        "id": attrs["Id"],
        "tags": tags,
        "references": tags + digests,
        "repositories": sorted({repository_of(name) for name in names}),
        "created": _seconds(attrs.get("Created")),
        "parent": attrs.get("Parent") or None,
        "size": attrs.get("Size") or 0,
        "layers": list(zip(chain_ids(diff_ids), layer_sizes(len(diff_ids), list(history_sizes)))),
        "attrs": attrs,
    }


def _matches(repository, patterns):
    """Whether a repository (as the engine lists it) matches one of the shell patterns (``app``, ``team/*``)."""
    return any(fnmatch.fnmatchcase(repository, image_ref.familiar(pattern)) for pattern in patterns)


def _newest_per_repository(images, count):
    """{image id: repository} for the `count` newest images of each repository."""
    newest = {}
    if count <= 0:
        return newest
    by_repository = {}
    for image in images:
        for repository in image["repositories"]:
            by_repository.setdefault(repository, []).append(image)
    for repository, members in sorted(by_repository.items()):
        for image in sorted(members, key=lambda item: (-item["created"], item["id"]))[:count]:
            newest.setdefault(image["id"], repository)
    return newest


def _fixed_reason(image, policy, containers):
    """The reason to keep `image` that no other image changes, or None."""
    if image["id"] in containers:
        return "in use by container %s" % containers[image["id"]]
    for entry in policy["keep_images"]:
        if is_same_image(image["attrs"], entry):
            return "an image of the bundle (%s)" % ", ".join(entry.get("references") or [image["id"]])
    named = [name for name in image["references"] if name in policy["keep_names"] or image_ref.normalize(name) in policy["keep_names"]]
    if named:
        return "named in keep_references (%s)" % ", ".join(named)
    outside = [repository for repository in image["repositories"] if not _matches(repository, policy["repositories"])]
    if outside:
        return "its repository %s is outside repositories" % ", ".join(outside)
    if not image["repositories"] and not policy["dangling"]:
        return "untagged, and dangling is false"
    return None


def _policy_reason(image, policy, newest, now):
    if image["id"] in newest:
        return "one of the %d newest images of %s" % (policy["keep_newest"], newest[image["id"]])
    if policy["keep_newer_than"] is not None and image["created"] > now - policy["keep_newer_than"]:
        return "newer than %s" % policy["keep_newer_than_text"]
    return None


def _keep_parents(images, reasons):
    """An image whose child stays is kept too: removing it would only untag it (the child holds its layers)."""
    by_id = {image["id"]: image for image in images}
    changed = True
    while changed:
        changed = False
        for image in images:
            parent = image["parent"]
            if reasons.get(image["id"]) and parent in by_id and not reasons.get(parent):
                reasons[parent] = "parent of the kept image %s" % (image["references"] or [image["id"]])[0]
                changed = True


def decide(images, policy, containers, now):
    """{image id: reason to keep, or None to remove} for every image."""
    reasons = {image["id"]: _fixed_reason(image, policy, containers) for image in images}
    newest = _newest_per_repository(images, policy["keep_newest"])
    for image in images:
        if reasons[image["id"]] is None:
            reasons[image["id"]] = _policy_reason(image, policy, newest, now)
    _keep_parents(images, reasons)
    return reasons


def report_order(images):
    """Images in the order they are reported and removed: by first name (untagged ones last), then ID."""
    return sorted(images, key=lambda image: (not image["references"], (image["references"] or [""])[0], image["id"]))


def freed_bytes(images, removed_ids):
    """{image id: bytes freed} for the removed images: layers no remaining image uses, each counted once."""
    kept_layers = {chain for image in images if image["id"] not in removed_ids for chain, _size in image["layers"]}
    counted = set(kept_layers)
    freed = {}
    for image in report_order(images):
        if image["id"] not in removed_ids:
            continue
        freed[image["id"]] = 0
        for chain, size in image["layers"]:
            if chain not in counted:
                counted.add(chain)
                freed[image["id"]] += size
    return freed
