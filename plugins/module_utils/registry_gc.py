# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""registry_gc: remember the bundle just pushed, delete the manifests of bundles no longer kept, reclaim the disk.

On the registry host. Manifests are deleted through the push endpoint's HTTP API (it must run with
storage.delete.enabled). Then distribution's ``registry garbage-collect`` runs in a one-off container
of the push endpoint's own image, with its storage and configuration, while the push endpoint is
stopped: nothing can be pushed during the collection (a blob uploaded meanwhile could be collected),
and the read-only pull endpoint keeps serving every kept image, whose blobs the collection marks.
The push endpoint is started again whatever happens. Reclaimed bytes are the disk use of the
storage directory before and after (as du counts it).
"""

from __future__ import annotations

import os
import time
import traceback

from ansible_collections.fleet.images.plugins.module_utils import registry_gc_record as gc_record
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    DockerConnectionError,
    DockerException,
    build_client,
    docker_error_message,
)
from ansible_collections.fleet.images.plugins.module_utils.image_result import image_result
from ansible_collections.fleet.images.plugins.module_utils.registry import DATA_MOUNT, CONFIG_MOUNT, MANIFEST_ACCEPT, RegistryConfigError
from ansible_collections.fleet.images.plugins.module_utils.registry import manifest_url, normalize_registry, target_reference
from ansible_collections.fleet.images.plugins.module_utils.registry_api import (
    API_TIMEOUT,
    RegistryApiError,
    api_session,
    failure_message,
    probe,
    remote_digest,
)

try:
    from requests.exceptions import RequestException
except ImportError:
    RequestException = OSError

GC_TIMEOUT = 1800
START_TIMEOUT = 60


class GcError(Exception):
    """The collection could not go on; the message names the registry, container or file and what to do."""


def disk_use(path):
    """Bytes the files under `path` take on disk, as du counts them (each inode once)."""
    total, seen = 0, set()
    for root, _dirs, files in os.walk(path):
        for name in files + [""]:
            try:
                info = os.lstat(os.path.join(root, name) if name else root)
            except FileNotFoundError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


def pushed_digests(session, registry, references, mirror_namespace, check_mode=False):
    """{name in the registry (repo:tag): manifest digest} for the images the role pushed.

    In check mode an image not pushed yet (the push was only predicted) is left out.
    """
    images = {}
    for reference in references:
        repository, tag = target_reference(reference, registry, mirror_namespace)[:2]
        digest = remote_digest(session, "https", registry, repository, tag)
        if digest is None and check_mode:
            continue
        if digest in (None, "unknown"):
            raise GcError("the site registry %s does not hold %s:%s (pushed as %s): push the bundle first (registry role), "
                          "then collect" % (registry, repository, tag, reference))
        images["%s:%s" % (repository, tag)] = digest
    return images


def delete_manifest(session, registry, repository, digest):
    """DELETE one manifest by digest; returns whether it was there."""
    url = manifest_url("https", registry, repository, digest)
    try:
        answer = session.delete(url, headers={"Accept": MANIFEST_ACCEPT}, timeout=API_TIMEOUT)
    except RequestException as exc:
        raise GcError(failure_message(registry, exc, None)) from exc
    if answer.status_code in (200, 202):
        return True
    if answer.status_code == 404:
        return False
    if answer.status_code == 405:
        raise GcError("the push endpoint %s refuses deletes (HTTP 405 on DELETE %s): it runs without storage.delete.enabled. "
                      "The registry role turns it on when registry_gc is true; run the role with it." % (registry, url))
    raise GcError("the push endpoint %s answered HTTP %d to DELETE %s: %s" % (registry, answer.status_code, url, answer.text[:200]))


def push_container(client, name):
    try:
        return client.containers.get(name)
    except DockerException as exc:
        raise GcError("the push endpoint's container %s is not on this host's engine (%s): run the registry role first" % (name, exc)) from exc


def mount_source(container, target):
    for mount in container.attrs.get("Mounts") or []:
        if mount.get("Destination") == target:
            return mount.get("Source")
    raise GcError("the container %s has no mount at %s: it is not a registry run by fleet.images.registry_deploy" % (container.name, target))


def run_collection(client, container):
    """distribution's garbage-collect on the push endpoint's storage, in a one-off container; returns its output."""
    mounts = ["%s:%s:%s" % (mount_source(container, target), target, mode) for target, mode in ((DATA_MOUNT, "rw"), (CONFIG_MOUNT, "ro"))]
    name = container.name + "-gc"
    leftover = [item for item in client.containers.list(all=True, filters={"name": name}) if item.name == name]
    for item in leftover:  # a collection killed half way
        item.remove(force=True)
    collector = client.containers.create(container.attrs["Image"], command=["garbage-collect", CONFIG_MOUNT], name=name,
                                         volumes=mounts, network_mode="none", labels={"fleet.images.registry.gc": "1"})
    try:
        collector.start()
        status = collector.wait(timeout=GC_TIMEOUT)
        output = collector.logs().decode("utf-8", "replace")
    finally:
        collector.remove(force=True)
    if status.get("StatusCode") != 0:
        raise GcError("registry garbage-collect failed in %s (exit %s): %s" % (name, status.get("StatusCode"), output.strip()[-2000:]))
    return output


def wait_answering(session, registry):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if probe(session, "https://" + registry) in (200, 401):
                return
        except RequestException:
            pass
        time.sleep(0.5)
    raise GcError("the push endpoint %s did not answer within %ds after the collection: check its container and logs" % (registry, START_TIMEOUT))


def collect(client, session, params):
    """Stop the push endpoint, collect, start it again; returns the bytes reclaimed."""
    container = push_container(client, params["push_container"])
    data_dir = mount_source(container, DATA_MOUNT)
    before = disk_use(data_dir)
    container.stop()
    try:
        run_collection(client, container)
    finally:
        container.start()
        wait_answering(session, normalize_registry(params["registry"]))
    return max(before - disk_use(data_dir), 0)


def items_for(deleted, kept):
    items = [image_result(name, [name], None, "removed", 0, digest=digest) for name, _repository, digest in deleted]
    items += [image_result(name, [name], None, "kept", 0, digest=digest) for name, digest in sorted(kept.items())]
    return items


def delete_and_collect(client, session, params, record, check_mode):
    """Delete the dropped bundles' manifests and collect; returns (record to keep, deleted, reclaimed bytes)."""
    registry = normalize_registry(params["registry"])
    candidates = gc_record.to_delete(record, params["keep_bundles"])
    if check_mode:
        return record, candidates, 0
    if candidates:
        record = dict(record, gc_pending=True)
        gc_record.save_record(params["record"], record)
    deleted = [item for item in candidates if delete_manifest(session, registry, item[1], item[2])]
    reclaimed = 0
    if record["gc_pending"]:
        reclaimed = collect(client, session, params)
    record = dict(gc_record.forget_dropped(record, params["keep_bundles"]), gc_pending=False)
    return record, deleted, reclaimed


def gc(params, check_mode):
    """The module's work; returns its result."""
    registry = normalize_registry(params["registry"])
    session = api_session(params.get("tls_ca"), params["username"], params["password"], check_hostname=False)
    stored = gc_record.load_record(params["record"])
    images = pushed_digests(session, registry, params["references"], params["mirror_namespace"], check_mode)
    record = gc_record.remember(stored, images)
    deleted, reclaimed = [], 0
    if params["delete"]:
        client = None if check_mode else build_client(params)
        record, deleted, reclaimed = delete_and_collect(client, session, params, record, check_mode)
    if check_mode:
        changed = bool(deleted) or stored != record
    else:
        changed = gc_record.save_record(params["record"], record) or bool(deleted) or reclaimed > 0
    return {
        "changed": changed,
        "images": items_for(deleted, images),
        "reclaimed_bytes": reclaimed,
        "bundles": [{"id": item["id"], "at": item["at"], "images": sorted(item["images"])} for item in record["bundles"]],
        "msg": "%s %d manifest(s), reclaimed %d bytes; %d bundle(s) remembered" % (
            "would delete" if check_mode else "deleted", len(deleted), reclaimed, len(record["bundles"])),
    }


def run_module(module):
    """registry_gc: check the options, remember, delete, collect; exit or fail the module."""
    if module.params["keep_bundles"] < 1:
        module.fail_json(msg="keep_bundles must be 1 or more (the bundle just pushed is one), got %d" % module.params["keep_bundles"])
    try:
        module.exit_json(**gc(module.params, module.check_mode))
    except (GcError, RegistryApiError, RegistryConfigError, gc_record.RecordError, DockerConnectionError) as exc:
        module.fail_json(msg=str(exc))
    except DockerException as exc:
        module.fail_json(msg=docker_error_message(exc, "collecting garbage in the site registry"), exception=traceback.format_exc())
