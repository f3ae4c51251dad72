"""image_save's pull policies against a real registry (the lab's registry:2) on a loopback port."""

from __future__ import annotations

import json
import os

import pytest
from module_runner import with_action


def push(engine, source, repository, tag):
    engine.client.api.tag(source, repository, tag, force=True)
    for event in engine.client.api.push(repository, tag=tag, stream=True, decode=True):
        assert "error" not in event, event
    engine.remove("%s:%s" % (repository, tag))


@pytest.fixture()
def pushed(local_registry, local_engine, test_images):
    """A reference to an image in the loopback registry, that the local engine does not hold under that name."""
    repository = "%s/itest-bundle/pulled" % local_registry
    push(local_engine, test_images.refs["multi"], repository, test_images.marker)
    reference = "%s:%s" % (repository, test_images.marker)
    assert local_engine.image_id(reference) is None
    yield reference
    # pulled images keep a repo digest reference after their tag is gone: drop those too
    local_engine.remove(reference)
    for image in local_engine.client.api.images(all=True):
        for digest_reference in image.get("RepoDigests") or []:
            if digest_reference.startswith(local_registry + "/"):
                local_engine.remove(digest_reference)


def entry_of(dest):
    with open(os.path.join(dest, "bundle.json")) as handle:
        return json.load(handle)["images"][0]


def test_pull_never_refuses_an_image_the_engine_lacks(pushed, run, tmp_path):
    result = run("image_save", {"images": [pushed], "dest": str(tmp_path / "bundle"), "pull": "never"})
    assert result["failed"] is True
    assert "image %s does not exist on the engine" % pushed in result["msg"] and "pull is never" in result["msg"]


def test_pull_missing_then_always(pushed, local_registry, local_engine, test_images, run, tmp_path):
    dest = str(tmp_path / "bundle")
    params = {"images": [pushed], "dest": dest, "pull": "missing", "platform": "linux/amd64"}

    check = run("image_save", params, check=True)
    assert check["changed"] is True and check["images"][0]["pulled"] == "would be pulled"
    assert local_engine.image_id(pushed) is None, "check mode pulled"

    first = run("image_save", params)
    assert not first["failed"], first["msg"]
    assert first["changed"] is True and first["images"][0]["pulled"] == "pulled" and first["images"][0]["action"] == "saved"
    assert local_engine.image_id(pushed) == test_images.ids["multi"]
    entry = entry_of(dest)
    assert entry["image_id"] == test_images.ids["multi"]
    assert any(digest.startswith("%s/itest-bundle/pulled@sha256:" % local_registry) for digest in entry["repo_digests"]), entry

    present = run("image_save", params)
    assert present["changed"] is False and present["images"][0]["pulled"] is None

    always = run("image_save", dict(params, pull="always"))
    assert not always["failed"], always["msg"]
    assert always["images"][0]["pulled"] == "pulled"
    assert always["changed"] is False, "the same image pulled again must not rewrite the tarball"

    # the tag moves in the registry: pull always follows it and rewrites the tarball
    repository, tag = pushed.rsplit(":", 1)
    push(local_engine, test_images.refs["shared-a"], repository, tag)
    moved = run("image_save", dict(params, pull="always"))
    assert not moved["failed"], moved["msg"]
    assert moved["changed"] is True and moved["images"][0]["action"] == "saved"
    assert moved["images"][0]["reason"] == "the bundle holds image %s, the engine has %s" % (test_images.ids["multi"], test_images.ids["shared-a"])
    assert entry_of(dest)["image_id"] == test_images.ids["shared-a"]
    assert sorted(os.listdir(os.path.join(dest, "images"))) == [os.path.basename(entry_of(dest)["file"])]


def test_platform_mismatch_with_pull_never(test_images, run, tmp_path):
    result = run("image_save", {"images": [test_images.refs["multi"]], "dest": str(tmp_path / "bundle"), "pull": "never",
                                "platform": "linux/s390x"})
    assert result["failed"] is True
    assert result["msg"] == "image %s on the engine unix:///var/run/docker.sock is for linux/amd64, not linux/s390x, and pull is never" % (
        test_images.refs["multi"])


def test_saved_by_digest_loads_untagged_and_is_found_by_id(pushed, local_engine, trixie_engine, test_images, run, tmp_path):
    dest = str(tmp_path / "bundle")
    pulled = run("image_save", {"images": [pushed], "dest": str(tmp_path / "first"), "pull": "missing"})
    assert not pulled["failed"], pulled["msg"]
    repository = pushed.rsplit(":", 1)[0]
    by_digest = next(digest for digest in local_engine.client.api.inspect_image(pushed)["RepoDigests"] if digest.startswith(repository + "@"))

    saved = run("image_save", {"images": [by_digest], "dest": dest, "pull": "never"})
    assert not saved["failed"], saved["msg"]
    entry = entry_of(dest)
    assert entry["references"] == [by_digest] and entry["tags"] == []
    assert "@" not in entry["file"] and "sha256-" in entry["file"]

    trixie_engine.remove(test_images.ids["multi"])
    loaded = run("image_load", {"bundle": dest, "docker_host": trixie_engine.docker_host})
    assert not loaded["failed"], loaded["msg"]
    assert with_action(loaded, "loaded")[0]["image_id"] == test_images.ids["multi"] and with_action(loaded, "loaded")[0]["tags"] == []
    assert trixie_engine.image_id(test_images.ids["multi"]) == test_images.ids["multi"]
    again = run("image_load", {"bundle": dest, "docker_host": trixie_engine.docker_host})
    assert again["changed"] is False and with_action(again, "unchanged")[0]["image_id"] == test_images.ids["multi"]
