"""registry_gc_record: which bundles the site registry remembers, and which manifests go (pure logic and one file)."""

from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.fleet.images.plugins.module_utils import registry_gc_record as gc_record

WHEN = datetime.datetime(2026, 12, 3, 18, 0, tzinfo=datetime.timezone.utc)


def recorded(*bundles):
    record = gc_record.empty_record()
    for images in bundles:
        record = gc_record.remember(record, images, WHEN)
    return record


def test_the_same_bundle_again_is_not_added_twice_and_an_earlier_one_moves_to_the_end():
    a, b = {"app:1": "sha256:a"}, {"app:2": "sha256:b"}
    record = recorded(a, b)
    assert gc_record.remember(record, b, WHEN) == record
    assert [item["images"] for item in gc_record.remember(record, a, WHEN)["bundles"]] == [b, a]


def test_only_manifests_of_dropped_bundles_that_no_kept_bundle_holds_go():
    record = recorded({"app:1": "sha256:a", "base:1": "sha256:base"}, {"app:2": "sha256:b", "base:1": "sha256:base"},
                      {"app:3": "sha256:c", "base:1": "sha256:base"})
    assert gc_record.to_delete(record, 2) == [("app:1", "app", "sha256:a")]
    assert gc_record.to_delete(record, 3) == []
    assert gc_record.to_delete(record, 1) == [("app:1", "app", "sha256:a"), ("app:2", "app", "sha256:b")]


def test_a_digest_kept_under_another_name_in_the_same_repository_stays_but_not_in_another_repository():
    record = recorded({"app:1": "sha256:a", "copy:1": "sha256:a"}, {"app:latest": "sha256:a"})
    assert gc_record.to_delete(record, 1) == [("copy:1", "copy", "sha256:a")]


def test_a_tag_moved_by_a_newer_bundle_lets_its_old_manifest_go():
    record = recorded({"app:latest": "sha256:old"}, {"app:latest": "sha256:new"})
    assert gc_record.to_delete(record, 1) == [("app:latest", "app", "sha256:old")]


def test_the_record_file_is_root_only_and_a_damaged_one_is_named(tmp_path):
    path = str(tmp_path / "dir" / "bundles.json")
    assert gc_record.load_record(path) == gc_record.empty_record()
    assert gc_record.save_record(path, recorded({"app:1": "sha256:a"}))
    assert not gc_record.save_record(path, recorded({"app:1": "sha256:a"}))
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert gc_record.load_record(path)["bundles"][0]["images"] == {"app:1": "sha256:a"}
    with open(path, "w") as handle:
        json.dump({"bundles": "no"}, handle)
    with pytest.raises(gc_record.RecordError, match="is not one this collection wrote"):
        gc_record.load_record(path)
    with open(path, "w") as handle:
        handle.write("{")
    with pytest.raises(gc_record.RecordError, match="cannot read the record of bundles %s" % path):
        gc_record.load_record(path)
