"""image_prune against a real engine of its own (never the shared one: a wrong removal there would take others' images).

Images are tiny: a root file system with /usr/bin/sleep and its libraries, so that containers really run.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest
from private_dockerd import PrivateEngine

from ansible_collections.fleet.images.plugins.module_utils import prune_engine

REPO = "fi-e/app"


def sleep_rootfs(marker):
    """A tar of a root file system that can run `sleep`; `marker` makes each image distinct."""
    paths = ["/usr/bin/sleep"]
    ldd = subprocess.run(["ldd", "/usr/bin/sleep"], capture_output=True, text=True, check=True).stdout
    paths += [part for line in ldd.splitlines() for part in line.split() if part.startswith("/")]
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for path in paths:
            archive.add(os.path.realpath(path), arcname=path.lstrip("/"))
        text = marker.encode()
        info = tarfile.TarInfo("marker")
        info.size = len(text)
        archive.addfile(info, io.BytesIO(text))
    return data.getvalue()


@pytest.fixture(scope="module")
def engine_e():
    engine = PrivateEngine()
    try:
        yield engine
    finally:
        engine.stop()


def make_image(engine, reference, marker=None):
    repository, tag = reference.rsplit(":", 1)
    engine.client.api.import_image_from_data(sleep_rootfs(marker or reference), repository=repository, tag=tag,
                                             changes=["CMD [\"/usr/bin/sleep\", \"300\"]"])
    return engine.client.api.inspect_image(reference)["Id"]


def run_container(engine, image, name, running):
    container = engine.client.api.create_container(image, name=name, host_config=engine.client.api.create_host_config(network_mode="none"))
    if running:
        engine.client.api.start(container["Id"])
    return container["Id"]


@pytest.fixture()
def clean(engine_e):
    """Start each test with no container and no image on the private engine."""
    api = engine_e.client.api
    for container in api.containers(all=True):
        api.remove_container(container["Id"], force=True)
    for image in api.images(all=True):
        api.remove_image(image["Id"], force=True)
    return engine_e


def prune(module_runner, engine, check_mode=False, **params):
    return module_runner("image_prune", dict(params, docker_host=engine.docker_host), check_mode=check_mode)


def by_reference(result):
    return {item["reference"]: item for item in result["images"]}


def test_an_image_in_use_is_never_removed_even_when_the_policy_names_it(clean, module_runner):
    engine = clean
    running = make_image(engine, REPO + ":running")
    stopped = make_image(engine, REPO + ":stopped")
    moved = make_image(engine, REPO + ":moved")
    make_image(engine, REPO + ":unused")
    run_container(engine, REPO + ":running", "fi-e-running", running=True)
    run_container(engine, REPO + ":stopped", "fi-e-stopped", running=False)
    run_container(engine, REPO + ":moved", "fi-e-moved", running=False)
    make_image(engine, REPO + ":moved", marker="the tag moved to another image")  # the container still uses the old one
    result = prune(module_runner, engine, repositories=[REPO], keep_newest=0)
    assert not result["failed"], result
    items = {item["image_id"]: item for item in result["images"]}
    assert items[running]["action"] == "kept" and "fi-e-running (running)" in items[running]["reason"]
    assert items[stopped]["action"] == "kept" and "fi-e-stopped (stopped)" in items[stopped]["reason"]
    assert items[moved]["action"] == "kept" and "fi-e-moved (stopped)" in items[moved]["reason"]
    assert by_reference(result)[REPO + ":unused"]["action"] == "removed"
    assert by_reference(result)[REPO + ":moved"]["action"] == "removed"
    left = {image["Id"] for image in engine.client.api.images(all=True)}
    assert {running, stopped, moved} <= left
    assert result["changed"] and result["bytes_freed"] > 0


def test_retention_keeps_the_newest_per_repository_and_young_images(clean, module_runner):
    engine = clean
    for number in range(1, 5):
        make_image(engine, "%s:%d" % (REPO, number))
    make_image(engine, "fi-e/other:1")
    result = prune(module_runner, engine, repositories=["fi-e/*"], keep_newest=2, check_mode=True)
    actions = {item["reference"]: item["action"] for item in result["images"]}
    assert actions == {REPO + ":1": "removed", REPO + ":2": "removed", REPO + ":3": "kept", REPO + ":4": "kept", "fi-e/other:1": "kept"}
    assert "one of the 2 newest images of fi-e/app" == by_reference(result)[REPO + ":4"]["reason"]
    young = prune(module_runner, engine, repositories=["fi-e/*"], keep_newer_than="1h", check_mode=True)
    assert {item["action"] for item in young["images"]} == {"kept"} and not young["changed"]
    outside = prune(module_runner, engine, repositories=["fi-e/other"], check_mode=True)
    assert by_reference(outside)[REPO + ":1"]["reason"] == "its repository fi-e/app is outside repositories"
    assert by_reference(outside)["fi-e/other:1"]["action"] == "removed"


def test_bundle_images_are_kept_by_entry_and_by_bundle_directory(clean, module_runner, tmp_path):
    engine = clean
    first = make_image(engine, REPO + ":1")
    make_image(engine, REPO + ":2")
    make_image(engine, REPO + ":3")
    saved = module_runner("image_save", {"docker_host": engine.docker_host, "bundle": str(tmp_path / "bundle"), "images": [REPO + ":2"]})
    assert not saved["failed"], saved
    entry = {"references": ["fi-e/app:1"], "image_id": first}
    result = prune(module_runner, engine, repositories=[REPO], keep_images=[entry], keep_bundles=[str(tmp_path / "bundle")])
    actions = {item["reference"]: (item["action"], item["reason"]) for item in result["images"]}
    assert actions[REPO + ":1"] == ("kept", "an image of the bundle (fi-e/app:1)")
    assert actions[REPO + ":2"] == ("kept", "an image of the bundle (fi-e/app:2)")
    assert actions[REPO + ":3"] == ("removed", None)


def test_check_mode_reports_what_the_real_run_does_and_a_rerun_changes_nothing(clean, module_runner):
    engine = clean
    base = make_image(engine, REPO + ":1")
    engine.client.api.tag(base, REPO, "latest")
    make_image(engine, REPO + ":2")
    make_image(engine, "fi-e/keep:1")
    engine.client.api.import_image_from_data(sleep_rootfs("dangling"))
    params = dict(repositories=["fi-e/app"], keep_newest=1)
    check = prune(module_runner, engine, check_mode=True, **params)
    assert check["changed"] and check["bytes_freed"] > 0
    assert len(engine.client.api.images()) == 4  # check mode removed nothing
    real = prune(module_runner, engine, **params)
    assert real["images"] == check["images"] and real["bytes_freed"] == check["bytes_freed"]
    removed = sorted(item["reference"] for item in real["images"] if item["action"] == "removed")
    assert removed == sorted([REPO + ":1"]) + [item["reference"] for item in real["images"] if item["references"] == [item["image_id"]]]
    assert by_reference(real)[REPO + ":1"]["references"] == [REPO + ":1", REPO + ":latest"]
    rerun = prune(module_runner, engine, **params)
    assert not rerun["changed"] and rerun["bytes_freed"] == 0
    assert {item["action"] for item in rerun["images"]} == {"kept"}


def test_a_container_created_after_the_listing_makes_the_engine_refuse_and_the_image_stays_whole(clean):
    engine = clean
    image_id = make_image(engine, REPO + ":1")
    engine.client.api.tag(image_id, REPO, "latest")
    policy = prune_engine.build_policy({"keep_images": [], "keep_bundles": [], "keep_references": [], "repositories": [REPO],
                                        "dangling": True, "keep_newest": 0, "keep_newer_than": None})
    images, reasons = prune_engine.plan(engine.client, policy)
    assert reasons[image_id] is None
    run_container(engine, image_id, "fi-e-late", running=False)  # between the listing and the removal
    result = prune_engine.execute(engine.client, images, reasons, check_mode=False)
    item = result["images"][0]
    assert item["action"] == "kept" and item["reason"].startswith("in use: the engine refused to remove it")
    assert not result["changed"] and result["bytes_freed"] == 0
    assert sorted(engine.client.api.inspect_image(image_id)["RepoTags"]) == [REPO + ":1", REPO + ":latest"]


@pytest.mark.parametrize("params, message", [
    ({"keep_newer_than": "soon"}, "keep_newer_than 'soon' is not an age"),
    ({"keep_newest": -1}, "keep_newest must be 0 or more"),
    ({"keep_images": [{"references": ["app:1"]}]}, "keep_images[0] (app:1) records no image identity"),
    ({"keep_bundles": ["/nonexistent/fi-e-bundle"]}, "bundle directory /nonexistent/fi-e-bundle does not exist"),
])
def test_bad_input_is_refused_before_anything_is_removed(clean, module_runner, params, message):
    make_image(clean, REPO + ":1")
    result = prune(module_runner, clean, **params)
    assert result["failed"] and message in result["msg"], result
    assert "Traceback" not in result.get("module_stderr", "")
    assert clean.client.api.images()
