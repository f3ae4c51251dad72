"""image_pull's input checks, without an engine."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.images.plugins.module_utils import registry_pull

GOOD = {"references": ["nginx:1.25"], "tags": ["nginx:1.25"], "image_id": "sha256:" + "a" * 64}


@pytest.mark.parametrize("entry, problem", [
    (GOOD, None),
    (dict(GOOD, references=[]), "needs references"),
    (dict(GOOD, tags=["nginx@sha256:" + "b" * 64]), "nginx:1.25 needs tags"),
    (dict(GOOD, image_id="3f1e"), "nginx:1.25 needs image_id"),
    ({"references": ["x:1"], "tags": ["x:1"]}, "x:1 needs image_id"),
])
def test_entry_problem_names_the_image_and_the_field(entry, problem):
    found = registry_pull.entry_problem(entry)
    assert (found is None) if problem is None else (problem in found)
