# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references, the one parser: ``[registry[:port]/]path[:tag][@sha256:digest]``.

Docker's rules (distribution's ``reference`` package): the first path component is a registry
host when it holds a ``.`` or a ``:`` or is ``localhost``; only a ``:`` after the last ``/`` starts a
tag; Docker Hub is ``docker.io`` (also written ``index.docker.io``) and its official images live
under ``library/``. The engine lists tags in the familiar form (``nginx:1.25``, ``team/app:1``).
"""

from __future__ import annotations

import re

from ansible_collections.fleet.images.plugins.module_utils.hashing import normalize_sha256

DOCKER_HUB_DOMAINS = ("docker.io", "index.docker.io", "registry-1.docker.io")
# The prefixes the engine drops when it lists a Docker Hub name (RepoTags), longest first.
FAMILIAR_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/")
NAME_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class InvalidReference(ValueError):
    """A string that is not an image reference; the message names it and what is wrong."""


def split(reference):
    """(repository, tag or None, digest or None); the repository keeps its registry (and port)."""
    name, _separator, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:], digest or None
    return name, None, digest or None


def repository_and_tag(reference):
    """(repository, tag) as ``docker tag`` takes them: the tag defaults to ``latest``."""
    repository, tag, _digest = split(reference)
    return repository, tag or "latest"


def familiar(name):
    """``docker.io/library/nginx:1`` → ``nginx:1``, ``docker.io/team/app:1`` → ``team/app:1``: how the engine lists tags."""
    for prefix in FAMILIAR_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def normalize(reference):
    """The form the engine lists in RepoTags: ``nginx`` → ``nginx:latest``, ``docker.io/library/x:1`` → ``x:1``."""
    repository, tag, digest = split(familiar(reference.strip()))
    if digest:
        return "%s@%s" % (repository if tag is None else "%s:%s" % (repository, tag), digest)
    return "%s:%s" % (repository, tag or "latest")


def is_tag(reference):
    """True for ``name[:tag]`` references, which a load can restore; a digest cannot be re-created locally."""
    return "@" not in reference


def check(reference):
    """Raise InvalidReference unless `reference` looks like an image reference (the engine judges the rest)."""
    if not isinstance(reference, str) or not reference.strip():
        raise InvalidReference("an image reference must be a non-empty string, got %r" % (reference,))
    if re.search(r"\s", reference.strip()):
        raise InvalidReference("image reference %r contains whitespace" % reference)
    repository, tag, digest = split(reference.strip())
    if not repository or tag == "" or digest == "":
        raise InvalidReference("image reference %r is incomplete: expected name[:tag] or name@sha256:digest" % reference)
    if digest is not None and normalize_sha256(digest) is None:
        raise InvalidReference("image reference %r has digest %r; expected sha256: followed by 64 hex digits" % (reference, digest))


def parse(reference):
    """Split a reference strictly, as Docker does: (domain or None, path, tag or None, digest or None)."""
    text = (reference or "").strip()
    if not text:
        raise InvalidReference("empty image reference")
    name, tag, digest = split(text)
    domain = None
    first, separator, rest = name.partition("/")
    if separator and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, name = first, rest
    for component in name.split("/"):
        if not NAME_COMPONENT_RE.match(component):
            raise InvalidReference("image reference %r: %r is not a valid repository name component" % (reference, component))
    if tag is not None and not TAG_RE.match(tag):
        raise InvalidReference("image reference %r: %r is not a valid tag" % (reference, tag))
    return domain, name, tag, digest


def is_docker_hub(domain):
    return domain is None or domain in DOCKER_HUB_DOMAINS
