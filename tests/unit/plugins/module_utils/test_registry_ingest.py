"""registry_ingest's pure parts: target names of a bundle entry, and what must be staged (no registry involved)."""

from __future__ import annotations

from types import SimpleNamespace

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils.registry_ingest import needed_files, targets_of

REGISTRY = SimpleNamespace(registry="127.0.0.1:5001", mirror_namespace=True)
DIGESTS = ["sha256:" + (str(number) * 64) for number in range(1, 6)]


def test_every_tagged_reference_is_a_target_and_a_digest_only_one_is_not():
    entry = {"references": ["nginx:1.25", "nginx:latest", "nginx@" + DIGESTS[0], "registry.example.com/team/app:2.1@" + DIGESTS[1]]}
    assert targets_of(REGISTRY, entry) == [
        ("library/nginx", "1.25", "127.0.0.1:5001/library/nginx:1.25"),
        ("library/nginx", "latest", "127.0.0.1:5001/library/nginx:latest"),
        ("team/app", "2.1", "127.0.0.1:5001/team/app:2.1"),
    ]


def test_needed_files_leave_out_what_another_repository_holds_and_a_manifest_the_registry_has():
    ingest = SimpleNamespace(held_in={DIGESTS[2]: "library/other"})
    plans = [
        {"sends": [("library/a", DIGESTS[1], 10), ("library/a", DIGESTS[2], 20)], "todo": [("library/a", "1", "x")],
         "manifest": (DIGESTS[0], 5), "manifest_held": False},
        {"sends": [("library/b", DIGESTS[1], 10)], "todo": [("library/b", "1", "y")], "manifest": (DIGESTS[3], 5), "manifest_held": True},
        {"sends": [], "todo": [], "manifest": (DIGESTS[4], 5), "manifest_held": False},
    ]
    assert needed_files(ingest, plans) == [bundle.blob_name(DIGESTS[1]), bundle.blob_name(DIGESTS[0])]
