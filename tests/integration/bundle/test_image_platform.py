"""Platforms: a bundle image built for another architecture than the engine's is refused (or skipped when
asked) by image_load and image_pull, and never loaded. The arm64 image is a tiny docker-archive whose
config names arm64 (tests/integration/tiny_images.py: Docker 20.10 ignores `docker import --platform`).
Loaded into each engine generation (`target`).
"""

from __future__ import annotations

import json
import pathlib
import uuid

import pytest

from ports import free_port
from tiny_images import tiny_image

PREFIX = "fi-f-platform"


@pytest.fixture(scope="module")
def platform_bundle(local_engine, module_runner, tmp_path_factory):
    """A bundle with an arm64 image and an amd64 one, saved from the local engine, which keeps neither."""
    marker = uuid.uuid4().hex[:10]
    refs, ids = {}, {}
    for architecture in ("arm64", "amd64"):
        refs[architecture] = "%s/%s:%s" % (PREFIX, architecture, marker)
        data, ids[architecture] = tiny_image([refs[architecture]], "%s %s\n" % (marker, architecture), architecture)
        local_engine.client.images.load(data)
    dest = str(tmp_path_factory.mktemp("platform-bundle"))
    try:
        saved = module_runner("image_save", {"images": [refs["arm64"], refs["amd64"]], "bundle": dest, "pull": "never"})
        assert not saved["failed"], saved["msg"]
    finally:
        local_engine.remove(*refs.values())
    manifest = json.loads(pathlib.Path(dest, "bundle.json").read_text())
    assert {entry["architecture"] for entry in manifest["images"]} == {"arm64", "amd64"}
    yield {"bundle": dest, "refs": refs, "ids": ids, "entries": manifest["images"]}
    local_engine.remove(*refs.values())


@pytest.fixture()
def clean_target(target, platform_bundle):
    target.remove(*platform_bundle["refs"].values())
    yield target
    target.remove(*platform_bundle["refs"].values())


def test_image_load_refuses_the_other_platform_and_loads_the_rest(clean_target, platform_bundle, module_runner):
    refs = platform_bundle["refs"]
    result = module_runner("image_load", {"bundle": platform_bundle["bundle"], "docker_host": clean_target.docker_host})
    assert result["failed"]
    msg = result["msg"]
    for part in (refs["arm64"], "linux/arm64", "linux/amd64", clean_target.docker_host, "platform_mismatch: skip"):
        assert part in msg, msg
    assert "Traceback" not in msg
    actions = {item["references"][0]: item["action"] for item in result["images"]}
    assert actions == {refs["amd64"]: "loaded"}
    assert [item["reference"] for item in result["failed_images"]] == [refs["arm64"]]
    assert "linux/arm64" in result["failed_images"][0]["error"]
    assert clean_target.image_id(refs["arm64"]) is None
    assert clean_target.image_id(platform_bundle["ids"]["arm64"]) is None
    assert clean_target.image_id(refs["amd64"]) is not None


def test_image_load_skips_the_other_platform_when_asked(clean_target, platform_bundle, module_runner):
    refs = platform_bundle["refs"]
    probe = module_runner("image_load", {"entries": platform_bundle["entries"], "docker_host": clean_target.docker_host,
                                         "platform_mismatch": "skip"}, check_mode=True)
    assert not probe["failed"], probe["msg"]
    arm_file = next(entry["file"] for entry in platform_bundle["entries"] if entry["architecture"] == "arm64")
    assert arm_file not in probe["load_files"] and len(probe["load_files"]) == 1
    refused = module_runner("image_load", {"entries": platform_bundle["entries"], "docker_host": clean_target.docker_host},
                            check_mode=True)
    assert refused["failed"] and "linux/arm64" in refused["msg"]

    result = module_runner("image_load", {"bundle": platform_bundle["bundle"], "docker_host": clean_target.docker_host,
                                          "platform_mismatch": "skip"})
    assert not result["failed"], result["msg"]
    by_ref = {item["references"][0]: item for item in result["images"]}
    assert by_ref[refs["arm64"]]["action"] == "unchanged"
    assert "linux/arm64" in by_ref[refs["arm64"]]["reason"] and "linux/amd64" in by_ref[refs["arm64"]]["reason"]
    assert by_ref[refs["amd64"]]["action"] == "loaded"
    assert clean_target.image_id(refs["arm64"]) is None and clean_target.image_id(platform_bundle["ids"]["arm64"]) is None


def test_image_pull_refuses_or_skips_before_asking_the_registry(local_engine, platform_bundle, module_runner):
    """Nothing listens on the registry port: an attempt to pull would fail otherwise."""
    arm = [entry for entry in platform_bundle["entries"] if entry["architecture"] == "arm64"]
    registry = "127.0.0.1:%d" % free_port()
    refused = module_runner("image_pull", {"images": arm, "registry": registry})
    assert refused["failed"] and "linux/arm64" in refused["msg"] and "linux/amd64" in refused["msg"], refused["msg"]
    skipped = module_runner("image_pull", {"images": arm, "registry": registry, "platform_mismatch": "skip"})
    assert not skipped["failed"] and not skipped["changed"], skipped.get("msg")
    assert [(item["reference"], item["action"]) for item in skipped["images"]] == [(platform_bundle["refs"]["arm64"], "unchanged")]
    assert "linux/arm64" in skipped["images"][0]["reason"]
    assert local_engine.image_id(platform_bundle["refs"]["arm64"]) is None
