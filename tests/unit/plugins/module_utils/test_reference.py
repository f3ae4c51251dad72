"""The one image reference parser: splitting, the engine's familiar form, strict parsing, checks."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.reference import InvalidReference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("reference, expected", [
    ("nginx", ("nginx", None, None)),
    ("nginx:1.25", ("nginx", "1.25", None)),
    ("localhost:5000/app", ("localhost:5000/app", None, None)),
    ("localhost:5000/app:2", ("localhost:5000/app", "2", None)),
    ("reg.example.com/team/app@" + DIGEST, ("reg.example.com/team/app", None, DIGEST)),
    ("reg.example.com/app:1@" + DIGEST, ("reg.example.com/app", "1", DIGEST)),
])
def test_split_reference(reference, expected):
    assert image_ref.split(reference) == expected


@pytest.mark.parametrize("reference, expected", [
    ("nginx", "nginx:latest"),
    ("docker.io/library/nginx:1.25", "nginx:1.25"),
    ("docker.io/team/app", "team/app:latest"),
    ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
    ("app@" + DIGEST, "app@" + DIGEST),
])
def test_normalize_reference_matches_the_engines_repo_tags(reference, expected):
    assert image_ref.normalize(reference) == expected


@pytest.mark.parametrize("reference, message", [
    ("", "non-empty string"),
    ("nginx: 1", "whitespace"),
    ("nginx:", "incomplete"),
    ("app@sha256:1234", "64 hex digits"),
])
def test_check_reference_refuses(reference, message):
    with pytest.raises(InvalidReference, match=message):
        image_ref.check(reference)


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("nginx", (None, "nginx", None, None)),
        ("reg.example:5000/a/b:1", ("reg.example:5000", "a/b", "1", None)),
        ("localhost/a", ("localhost", "a", None, None)),
        ("a/b@sha256:" + "0" * 64, (None, "a/b", None, "sha256:" + "0" * 64)),
    ],
)
def test_parse_reference(reference, expected):
    assert image_ref.parse(reference) == expected


@pytest.mark.parametrize("reference, expected", [
    ("nginx:1.25", ("nginx", "1.25")),
    ("nginx", ("nginx", "latest")),
    ("registry.example.com:5000/team/app:2.1", ("registry.example.com:5000/team/app", "2.1")),
    ("registry.example.com:5000/team/app", ("registry.example.com:5000/team/app", "latest")),
])
def test_split_tag_keeps_a_registry_port_in_the_repository(reference, expected):
    assert image_ref.repository_and_tag(reference) == expected


@pytest.mark.parametrize("name, expected", [
    ("docker.io/library/nginx:1", "nginx:1"),
    ("docker.io/team/app:1", "team/app:1"),
    ("index.docker.io/library/nginx:1", "nginx:1"),
    ("registry.example.com/team/app:1", "registry.example.com/team/app:1"),
])
def test_familiar_names_are_the_engines(name, expected):
    assert image_ref.familiar(name) == expected
