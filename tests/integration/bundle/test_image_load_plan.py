"""image_load given the manifest entries, in check mode (what bundle_image_info was), on both engine generations:
present, needs tags, needs its tarball, from the manifest alone."""

from __future__ import annotations

import pytest


@pytest.fixture()
def entries(bundles, target, run):
    """The zstd bundle's entries as bundle_info returns them, with every image loaded on the target."""
    loaded = run("image_load", {"bundle": bundles["zstd"], "docker_host": target.docker_host})
    assert not loaded["failed"], loaded["msg"]
    info = run("bundle_info", {"bundle": bundles["zstd"]})
    yield info["images"]
    # whatever the test removed, the target ends with every image of the bundle again
    restored = run("image_load", {"bundle": bundles["zstd"], "docker_host": target.docker_host})
    assert not restored["failed"], restored["msg"]


def by_reference(result, reference):
    return next(image for image in result["images"] if reference in image["references"])


def test_everything_present_needs_nothing(entries, target, test_images, run):
    result = run("image_load", {"entries": entries, "docker_host": target.docker_host}, check=True)
    assert not result["failed"], result.get("msg")
    assert result["changed"] is False
    assert result["load_files"] == [] and result["bytes"] == 0
    assert {image["action"] for image in result["images"]} == {"unchanged"}
    multi = by_reference(result, test_images.refs["multi"])
    assert multi["image_id"] == target.image_id(test_images.refs["multi"]) and multi["tags_set"] == []


def test_a_missing_tag_and_a_missing_image_are_told_apart(entries, target, test_images, run):
    multi, shared_a = test_images.refs["multi"], test_images.refs["shared-a"]
    # multi stays in the engine under another name only; shared-a is gone altogether
    target.client.api.tag(multi, "itest-bundle/keepalive", test_images.marker)
    target.remove(multi, shared_a)
    try:
        result = run("image_load", {"entries": entries, "docker_host": target.docker_host}, check=True)
    finally:
        target.remove("itest-bundle/keepalive:%s" % test_images.marker)
    assert not result["failed"], result.get("msg")
    tagged, missing = by_reference(result, multi), by_reference(result, shared_a)
    assert tagged["action"] == "tagged" and tagged["tags_set"] == [multi] and tagged["image_id"]
    assert missing["action"] == "loaded" and missing["image_id"] is None and missing["tags_set"] == [shared_a]
    assert tagged["files"] == [] and tagged["bytes"] == 0
    assert result["load_files"] == missing["files"] and len(missing["files"]) == 1 and missing["bytes"] > 0
    assert by_reference(result, test_images.refs["shared-b"])["action"] == "unchanged"


def test_an_entry_that_is_not_a_manifest_entry_is_refused(target, run):
    result = run("image_load", {"entries": [{"references": ["nginx:1.25"]}], "docker_host": target.docker_host}, check=True)
    assert result["failed"]
    assert "entries[0]" in result["msg"] and "file" in result["msg"] and "bundle_info" in result["msg"]


def test_an_unreachable_engine_is_named(entries, run, tmp_path):
    result = run("image_load", {"entries": entries, "docker_host": "unix://%s/none.sock" % tmp_path}, check=True)
    assert result["failed"]
    assert "none.sock" in result["msg"]


def test_entries_only_plan(entries, target, run):
    result = run("image_load", {"entries": entries, "docker_host": target.docker_host})
    assert result["failed"] and "entries only plans" in result["msg"]
