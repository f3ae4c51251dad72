# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bundle_push: a version 2 bundle's images into a registry over its HTTP API, with no Docker Engine.

Plan first, then move bytes. The plan asks the registry (HEAD) whether each target tag already
names the image's manifest (then nothing else is asked), else which of the image's blobs the
target repository lacks. Everything that would block the upload is refused before the first byte
moves: a blob only the base of a differential bundle carries and the registry lacks, a file the
bundle directory (the staging directory on the registry host) does not hold. Then each lacking
blob is mounted from another repository of the registry that holds it, or uploaded from its file
(registry_blobs verifies its digest while it streams), and the manifest is put under each tag.
Names in the registry follow registry.target_reference, as image_push and image_pull do.
"""

from __future__ import annotations

import hashlib
import os

from ansible_collections.fleet.images.plugins.module_utils import bundle, registry
from ansible_collections.fleet.images.plugins.module_utils.image_result import image_result
from ansible_collections.fleet.images.plugins.module_utils.registry_api import remote_digest
from ansible_collections.fleet.images.plugins.module_utils.registry_blobs import (
    BlobError, get_manifest, has_blob, put_manifest, send_blob, start_upload,
)


class IngestError(Exception):
    """The bundle cannot go into the registry as asked; the message names images, blobs and what to do."""


def bundle_file(digest):
    """The bundle-relative file of a blob (what the staging step copies)."""
    return bundle.blob_name(digest)


class Ingest:
    """One run against one registry: its answers are cached, so every question is asked once."""

    def __init__(self, session, params, manifest, bundle_dir):
        self.session = session
        self.registry = registry.normalize_registry(params["registry"])
        self.scheme = "http" if params["insecure"] else "https"
        self.base = "%s://%s" % (self.scheme, self.registry)
        self.mirror_namespace = params["mirror_namespace"]
        self.bundle_dir = bundle_dir
        self.required = bundle.required_blobs(manifest)
        self.held = {}       # (repository, digest) -> whether the registry holds that blob there
        self.held_in = {}    # digest -> a repository of the registry that holds it (for a cross-repository mount)

    def holds(self, repository, digest):
        key = (repository, digest)
        if key not in self.held:
            self.held[key] = has_blob(self.session, self.base, self.registry, repository, digest)
            if self.held[key]:
                self.held_in.setdefault(digest, repository)
        return self.held[key]

    def tag_digest(self, repository, tag):
        return remote_digest(self.session, self.scheme, self.registry, repository, tag)

    def path(self, digest):
        return bundle.blob_path(self.bundle_dir, digest)


def targets_of(ingest, entry):
    """(repository, tag, target) for every reference of the entry that names a tag."""
    targets = []
    for reference in entry["references"]:
        if "@" in reference and ":" not in reference.split("@", 1)[0].rsplit("/", 1)[-1]:
            continue  # a digest-only reference names no tag to put
        target = registry.target_reference(reference, ingest.registry, ingest.mirror_namespace)
        if target not in targets:
            targets.append(target)
    return targets


def plan_image(ingest, entry, reference):
    """What one image needs: the targets to tag, the blobs to send per repository, whether the manifest must be read."""
    blobs = bundle.image_blobs(entry)
    manifest_digest = blobs[0][0]
    todo = [target for target in targets_of(ingest, entry) if ingest.tag_digest(target[0], target[1]) != manifest_digest]
    sends = []
    for repository in sorted({target[0] for target in todo}):
        sends.extend((repository, digest, size) for digest, size in blobs[1:] if not ingest.holds(repository, digest))
    manifest_held = bool(todo) and all(ingest.tag_digest(repository, manifest_digest) == manifest_digest
                                       for repository in {target[0] for target in todo})
    return {"entry": entry, "reference": reference, "manifest": blobs[0], "todo": todo, "sends": sends, "manifest_held": manifest_held}


def needed_files(ingest, plans):
    """Bundle-relative files the upload reads: blobs no repository of the registry holds, manifests it lacks."""
    files = []
    for plan in plans:
        wanted = [digest for _repository, digest, _size in plan["sends"] if digest not in ingest.held_in]
        if plan["todo"] and not plan["manifest_held"]:
            wanted.append(plan["manifest"][0])
        files.extend(bundle_file(digest) for digest in wanted if bundle_file(digest) not in files)
    return files


def refuse_unreachable(ingest, plans, files, check_mode):
    """Fail before any upload when a blob is neither in the registry nor in the bundle directory."""
    owners = {}
    for plan in plans:
        for digest in [d for _r, d, _s in plan["sends"]] + [plan["manifest"][0]]:
            owners.setdefault(bundle_file(digest), (digest, plan["reference"]))
    from_base = sorted({owners[name] for name in files if owners[name][0] in ingest.required})
    if from_base:
        raise IngestError("This bundle is differential: registry %s lacks blobs only its base bundle carries (%s). Push the base "
                          "bundle into the registry first, then this one." % (ingest.registry, "; ".join(
                              "%s of image %s" % pair for pair in from_base)))
    absent = [name for name in files if not os.path.isfile(ingest.path(owners[name][0]))]
    if absent and not check_mode:
        raise IngestError("%s lacks %s, which registry %s needs (images: %s): stage these files of the bundle first (the module's "
                          "result needed_files lists them)." % (ingest.bundle_dir, ", ".join(absent), ingest.registry,
                                                                ", ".join(sorted({owners[name][1] for name in absent}))))


def send(ingest, repository, digest, size):
    """Mount or upload one blob into `repository`; returns the bytes uploaded."""
    if ingest.holds(repository, digest):
        return 0
    source = ingest.held_in.get(digest)
    location = start_upload(ingest.session, ingest.base, ingest.registry, repository, digest, mount_from=source)
    moved = 0 if location is None else send_blob(ingest.session, location, ingest.registry, ingest.path(digest), digest, size)
    ingest.held[(repository, digest)] = True
    ingest.held_in.setdefault(digest, repository)
    return moved


def manifest_bytes(ingest, plan):
    digest, size = plan["manifest"]
    media_type = plan["entry"]["manifest"].get("media_type") or "application/vnd.oci.image.manifest.v1+json"
    if plan["manifest_held"]:
        return get_manifest(ingest.session, ingest.base, ingest.registry, plan["todo"][0][0], digest, media_type), media_type
    with open(ingest.path(digest), "rb") as handle:
        data = handle.read(size + 1)
    if len(data) != size or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise BlobError("%s is damaged (not the %d bytes of manifest %s of image %s): copy the bundle again; the registry "
                        "was not tagged." % (ingest.path(digest), size, digest, plan["reference"]))
    return data, media_type


def push_image(ingest, plan):
    """Send what the plan says; returns the bytes moved."""
    moved = sum(send(ingest, repository, digest, size) for repository, digest, size in plan["sends"])
    data, media_type = manifest_bytes(ingest, plan)
    for repository, tag, target in plan["todo"]:
        got = put_manifest(ingest.session, ingest.base, ingest.registry, repository, tag, data, media_type)
        if got and got != plan["manifest"][0]:
            raise BlobError("registry %s stored %s as %s, not as %s: it changed the manifest." % (ingest.registry, target, got, plan["manifest"][0]))
        moved += len(data)
    return moved


def plan_bytes(ingest, plan):
    blobs = sum(size for _repository, digest, size in plan["sends"] if digest not in ingest.held_in)
    return blobs + plan["manifest"][1] * len(plan["todo"])


def result_item(ingest, plan, moved):
    entry = plan["entry"]
    action = "unchanged" if not plan["todo"] else ("tagged" if not plan["sends"] and plan["manifest_held"] else "pushed")
    targets = [target for _repository, _tag, target in targets_of(ingest, entry)]
    return image_result(plan["reference"], entry["references"], entry.get("image_id"), action, moved,
                        digest=plan["manifest"][0], targets=targets)


def ingest_bundle(session, params, check_mode):
    """The whole run: plan every selected image, refuse what cannot work, then upload; returns the module result."""
    bundle_dir = params["bundle"]
    # The staging directory holds only the files this run needs: their absence is judged below, per blob.
    manifest = bundle.load_manifest(bundle_dir, check_blobs=False)
    if not bundle.is_v2(manifest):
        raise IngestError("%s is a version %s bundle (one tarball per image): push its images from an engine with "
                          "fleet.images.image_push, or save the bundle with format_version 2." % (bundle_dir, manifest.get("version")))
    ingest = Ingest(session, params, manifest, bundle_dir)
    asked = params["images"] or []
    entries = bundle.select_entries(manifest, asked, bundle_dir)
    plans = [plan_image(ingest, entry, next((name for name in asked if bundle.find_entry(manifest, name) is entry),
                                            entry["references"][0])) for entry in entries]
    files = needed_files(ingest, plans)
    refuse_unreachable(ingest, plans, files, check_mode)
    items = [result_item(ingest, plan, plan_bytes(ingest, plan) if check_mode or not plan["todo"] else push_image(ingest, plan))
             for plan in plans]
    return {"registry": ingest.registry, "images": items, "needed_files": files,
            "changed": any(item["action"] != "unchanged" for item in items)}
