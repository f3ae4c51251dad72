# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blobs and manifests over a registry's HTTP API (distribution's /v2/): ask, mount, upload, put.

Every upload is verified on the way: the file is hashed while it streams (one PATCH), and only when
its bytes hash to the digest it is stored under does the upload get committed (PUT ?digest=).
Anything else is cancelled (DELETE of the upload session): the registry never holds a damaged blob.
Messages name the registry, the repository and the blob; never a credential (the session carries
them; URLs here never do).
"""

from __future__ import annotations

import hashlib
from urllib.parse import urljoin

from ansible_collections.fleet.images.plugins.module_utils.hashing import HASH_BUFFER, open_regular
from ansible_collections.fleet.images.plugins.module_utils.registry_api import API_TIMEOUT, RegistryApiError, failure_message

try:
    import requests
except ImportError:  # requests' absence is reported by registry_api.api_session
    requests = None

# A blob upload may take long on a slow disk or link: (connect, read) timeouts of the final answer.
UPLOAD_TIMEOUT = (API_TIMEOUT, 600)


class BlobError(Exception):
    """A blob or manifest that cannot go into the registry; the message says which and what to do."""


def _call(session, method, url, registry, **kwargs):
    kwargs.setdefault("timeout", API_TIMEOUT)
    try:
        answer = session.request(method, url, **kwargs)
    except requests.exceptions.RequestException as exc:
        raise RegistryApiError(failure_message(registry, exc, session.verify if session.verify is not True else None)) from exc
    if answer.status_code == 401:
        who = " as %s" % session.auth[0] if session.auth else " (no username given)"
        raise RegistryApiError("Registry %s refused %s %s%s (HTTP 401): check username and password." % (registry, method, url, who))
    return answer


def _refused(registry, what, answer):
    return RegistryApiError("Registry %s refused %s (HTTP %d): %s" % (registry, what, answer.status_code, answer.text[:300].strip()))


def has_blob(session, base, registry, repository, digest):
    """Whether the registry holds blob `digest` in `repository`."""
    answer = _call(session, "HEAD", "%s/v2/%s/blobs/%s" % (base, repository, digest), registry)
    if answer.status_code in (200, 404):
        return answer.status_code == 200
    raise _refused(registry, "HEAD of blob %s in %s" % (digest, repository), answer)


def start_upload(session, base, registry, repository, digest, mount_from=None):
    """The upload session's URL, or None when the registry mounted the blob from `mount_from` (same registry)."""
    params = {"mount": digest, "from": mount_from} if mount_from else None
    answer = _call(session, "POST", "%s/v2/%s/blobs/uploads/" % (base, repository), registry, params=params)
    if answer.status_code == 201 and mount_from:
        return None
    if answer.status_code != 202 or not answer.headers.get("Location"):
        raise _refused(registry, "starting an upload of blob %s into %s" % (digest, repository), answer)
    return urljoin(base + "/", answer.headers["Location"])


def _streamed(handle, hasher, counter):
    while True:
        data = handle.read(HASH_BUFFER)
        if not data:
            return
        hasher.update(data)
        counter[0] += len(data)
        yield data


def _cancel(session, location):
    try:
        session.delete(location, timeout=API_TIMEOUT)
    except requests.exceptions.RequestException:
        pass  # an abandoned upload session is purged by the registry itself


def send_blob(session, location, registry, path, digest, size):
    """Stream `path` into the upload session, then commit it only if its bytes are `digest` and `size` long."""
    hasher, counter = hashlib.sha256(), [0]
    with open_regular(path) as handle:
        answer = _call(session, "PATCH", location, registry, data=_streamed(handle, hasher, counter),
                       headers={"Content-Type": "application/octet-stream"}, timeout=UPLOAD_TIMEOUT)
    if answer.status_code != 202:
        _cancel(session, location)
        raise _refused(registry, "the bytes of blob %s" % digest, answer)
    location = urljoin(location, answer.headers.get("Location") or location)
    got = "sha256:" + hasher.hexdigest()
    if got != digest or counter[0] != size:
        _cancel(session, location)
        raise BlobError("%s is damaged: its %d bytes hash to %s, but it must be %d bytes hashing to %s. Nothing of it was "
                        "committed to registry %s; copy the bundle again (or stage the file again)." % (path, counter[0], got, size, digest, registry))
    answer = _call(session, "PUT", location, registry, params={"digest": digest})
    if answer.status_code != 201:
        raise _refused(registry, "committing blob %s" % digest, answer)
    return counter[0]


def put_manifest(session, base, registry, repository, reference, data, media_type):
    """PUT manifest bytes under `reference` (a tag or its digest); returns the digest the registry computed."""
    answer = _call(session, "PUT", "%s/v2/%s/manifests/%s" % (base, repository, reference), registry, data=data,
                   headers={"Content-Type": media_type})
    if answer.status_code != 201:
        raise _refused(registry, "the manifest %s:%s" % (repository, reference), answer)
    return answer.headers.get("Docker-Content-Digest")


def get_manifest(session, base, registry, repository, digest, media_type):
    """The bytes of manifest `digest` in `repository`, verified against the digest; None when the registry lacks it."""
    answer = _call(session, "GET", "%s/v2/%s/manifests/%s" % (base, repository, digest), registry, headers={"Accept": media_type})
    if answer.status_code == 404:
        return None
    if answer.status_code != 200:
        raise _refused(registry, "GET of manifest %s in %s" % (digest, repository), answer)
    if "sha256:" + hashlib.sha256(answer.content).hexdigest() != digest:
        raise BlobError("registry %s served manifest %s of %s with other bytes: refusing to tag it" % (registry, digest, repository))
    return answer.content
