"""image_load on a version 2 (content-addressed) bundle, against real engines (Docker 20.10 here, Docker 26 on a
trixie lab host): only the blobs an engine lacks are read, each checked before a byte reaches the engine, and the
docker-archive is composed on the fly from those same open files; layers the engine has are left out."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from ansible_collections.fleet.images.plugins.module_utils import bundle_load
from ansible_collections.fleet.images.plugins.module_utils.bundle_load import Loader


@pytest.fixture(scope="module")
def v2_bundle(test_images, tmp_path_factory, module_runner):
    dest = str(tmp_path_factory.mktemp("bundle-v2") / "bundle")
    result = module_runner("image_save", {"images": test_images.round_trip, "dest": dest, "format_version": 2, "pull": "never"})
    assert not result["failed"], result["msg"]
    return dest


@pytest.fixture(autouse=True)
def local_images_back(local_engine, test_images, v2_bundle, module_runner):
    """Whatever a test did, the local engine ends with the round-trip images (other tests save them)."""
    yield
    result = module_runner("image_load", {"bundle": v2_bundle})
    assert not result["failed"], result["msg"]


def manifest_of(bundle_dir):
    with open(os.path.join(bundle_dir, "bundle.json")) as handle:
        return json.load(handle)


def entry_of(bundle_dir, reference):
    return next(entry for entry in manifest_of(bundle_dir)["images"] if reference in entry["references"])


def blob(digest):
    return "blobs/sha256/" + digest.split(":", 1)[1]


def forget(engine, test_images, *names):
    """Remove the named round-trip images (short names) from an engine, by tag and by ID."""
    engine.remove(*[test_images.refs[name] for name in names])
    engine.remove(*[test_images.ids[name] for name in names])
    for name in names:
        assert engine.image_id(test_images.ids[name]) is None


def staged_copy(source, target, files):
    """A staging directory as the role makes it: bundle.json and only the given bundle files."""
    os.makedirs(os.path.join(target, "blobs", "sha256"))
    for name in ["bundle.json"] + list(files):
        shutil.copyfile(os.path.join(source, name), os.path.join(target, name))
    return target


def test_an_engine_with_none_of_the_images_gets_each_blob_once_then_nothing(trixie_engine, test_images, v2_bundle, run):
    forget(trixie_engine, test_images, "multi", "shared-a", "shared-b", "shared-base")
    params = {"bundle": v2_bundle, "docker_host": trixie_engine.docker_host}
    probe = run("image_load", {"entries": manifest_of(v2_bundle)["images"], "docker_host": trixie_engine.docker_host}, check=True)
    first = run("image_load", params)
    assert not first["failed"], first["msg"]
    assert [item["action"] for item in first["images"]] == ["loaded"] * 3
    for item in first["images"]:
        assert item["image_id"] == test_images.ids[item["reference"].split("/")[1].split(":")[0]]
        assert trixie_engine.image_id(item["reference"]) == item["image_id"]
    # shared-b's base layers went in with shared-a: only its config and its own layer were sent
    shared_b = entry_of(v2_bundle, test_images.refs["shared-b"])
    assert first["images"][2]["files"] == [blob(shared_b["config"]["digest"]), blob(shared_b["layers"][-1]["digest"])]
    assert first["images"][2]["bytes"] == shared_b["config"]["size"] + shared_b["layers"][-1]["size"]
    # the probe (entries, check mode) named every blob the load read, no more
    assert probe["load_files"] == first["load_files"]
    again = run("image_load", params)
    assert not again["failed"] and not again["changed"], again["msg"]
    assert [item["action"] for item in again["images"]] == ["unchanged"] * 3 and again["bytes"] == 0 and again["load_files"] == []


@pytest.fixture(scope="module")
def zstd_bundle(test_images, tmp_path_factory, module_runner):
    """One small image (three layers) with zstd layer blobs: the opt-in for sites whose engines are all Docker >= 23."""
    dest = str(tmp_path_factory.mktemp("fi-z-bundle-v2-zstd") / "bundle")
    result = module_runner("image_save", {"images": [test_images.refs["multi"]], "bundle": dest, "format_version": 2,
                                          "compression": "zstd", "pull": "never"})
    assert not result["failed"], result["msg"]
    return dest


@pytest.mark.parametrize("engine_fixture", ["bookworm_engine", "trixie_engine"])
def test_zstd_layers_load_by_copy_into_docker_20_10_and_26_with_the_same_image_id(request, engine_fixture, test_images, zstd_bundle, run):
    """Docker 26 reads the zstd layers as stored; for Docker 20.10 (which cannot) image_load decompresses them as they stream."""
    engine = request.getfixturevalue(engine_fixture)
    reference, image_id = test_images.refs["multi"], test_images.ids["multi"]
    layers = entry_of(zstd_bundle, reference)["layers"]
    assert {layer["media_type"] for layer in layers} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    forget(engine, test_images, "multi")
    params = {"bundle": zstd_bundle, "docker_host": engine.docker_host}
    first = run("image_load", params)
    assert not first["failed"], (engine.version, first["msg"])
    assert [(item["action"], item["image_id"]) for item in first["images"]] == [("loaded", image_id)]
    assert first["bytes"] == sum(layer["size"] for layer in layers) + entry_of(zstd_bundle, reference)["config"]["size"]
    assert engine.image_id(reference) == image_id
    assert engine.client.api.inspect_image(reference)["RootFS"]["Layers"] == [layer["diff_id"] for layer in layers]
    again = run("image_load", params)
    assert not again["failed"] and again["changed"] is False, again["msg"]
    assert [item["action"] for item in again["images"]] == ["unchanged"] and again["bytes"] == 0


def test_layers_the_engine_has_are_left_out_and_their_blobs_not_needed(local_engine, test_images, v2_bundle, run, tmp_path):
    forget(local_engine, test_images, "shared-a")  # shared-base (its lower layers) stays
    entry = entry_of(v2_bundle, test_images.refs["shared-a"])
    probe = run("image_load", {"entries": [entry]}, check=True)
    needed = [blob(entry["config"]["digest"]), blob(entry["layers"][-1]["digest"])]
    assert not probe["failed"] and probe["load_files"] == needed, probe
    # the host holds only those two blobs: enough
    staging = staged_copy(v2_bundle, str(tmp_path / "staging"), needed)
    loaded = run("image_load", {"bundle": staging, "images": [test_images.refs["shared-a"]]})
    assert not loaded["failed"], loaded["msg"]
    assert loaded["images"][0]["action"] == "loaded" and loaded["images"][0]["image_id"] == test_images.ids["shared-a"]
    assert local_engine.image_id(test_images.refs["shared-a"]) == test_images.ids["shared-a"]


def test_a_corrupted_blob_is_refused_before_any_load(local_engine, test_images, v2_bundle, run, tmp_path):
    forget(local_engine, test_images, "shared-a", "multi")
    damaged = str(tmp_path / "damaged")
    shutil.copytree(v2_bundle, damaged)
    entry = entry_of(damaged, test_images.refs["shared-a"])
    path = os.path.join(damaged, blob(entry["layers"][-1]["digest"]))
    with open(path, "r+b") as handle:
        handle.write(os.urandom(entry["layers"][-1]["size"]))
    result = run("image_load", {"bundle": damaged, "images": [test_images.refs["shared-a"]]})
    assert result["failed"]
    assert "%s failed its checksum: expected %s" % (path, entry["layers"][-1]["digest"]) in result["msg"], result["msg"]
    assert result["failed_images"][0]["reference"] == test_images.refs["shared-a"]
    assert local_engine.image_id(test_images.ids["shared-a"]) is None and local_engine.image_id(test_images.ids["multi"]) is None


def test_a_blob_missing_from_the_host_fails_before_anything_loads_naming_images_and_blobs(trixie_engine, test_images, v2_bundle, run, tmp_path):
    forget(trixie_engine, test_images, "multi", "shared-a", "shared-b", "shared-base")
    multi, shared_a = entry_of(v2_bundle, test_images.refs["multi"]), entry_of(v2_bundle, test_images.refs["shared-a"])
    # as if the base never reached this host: shared-a's lower layers are not there
    files = [blob(multi["config"]["digest"])] + [blob(layer["digest"]) for layer in multi["layers"]]
    files += [blob(shared_a["config"]["digest"]), blob(shared_a["layers"][-1]["digest"])]
    staging = staged_copy(v2_bundle, str(tmp_path / "staging"), files)
    result = run("image_load", {"bundle": staging, "images": [test_images.refs["multi"], test_images.refs["shared-a"]],
                                "docker_host": trixie_engine.docker_host})
    assert result["failed"]
    absent = ", ".join(layer["digest"] for layer in shared_a["layers"][:-1])
    assert "no image was loaded: %s lacks blobs: %s needs %s" % (staging, test_images.refs["shared-a"], absent) in result["msg"], result["msg"]
    assert trixie_engine.image_id(test_images.ids["multi"]) is None  # not even the image whose blobs were all there


def test_a_blob_swapped_after_its_check_cannot_change_what_is_loaded(local_engine, test_images, v2_bundle, tmp_path, monkeypatch):
    forget(local_engine, test_images, "multi")
    copy = str(tmp_path / "copy")
    shutil.copytree(v2_bundle, copy)
    entry = entry_of(copy, test_images.refs["multi"])
    stream_image = bundle_load.stream_image

    def swap_then_stream(client, blobs, layers, image, engine_name):
        for descriptor in [image["config"]] + image["layers"]:  # every blob replaced by another file, after the checks
            path = os.path.join(copy, blob(descriptor["digest"]))
            with open(path + ".evil", "wb") as handle:
                handle.write(os.urandom(descriptor["size"]))
            os.replace(path + ".evil", path)
        return stream_image(client, blobs, layers, image, engine_name)

    monkeypatch.setattr(bundle_load, "stream_image", swap_then_stream)
    loader = Loader(local_engine.client, local_engine.docker_host)
    loader.load_v2(copy, manifest_of(copy), [entry])
    assert loader.failures == [] and loader.results[0]["action"] == "loaded"
    assert local_engine.image_id(test_images.refs["multi"]) == test_images.ids["multi"]


KILLER = """
import os, signal, sys
sys.path[:0] = {paths!r}
import docker
from ansible_collections.fleet.images.plugins.module_utils import bundle_load, bundle_load_v2, docker_archive
from ansible_collections.fleet.images.plugins.module_utils.bundle_load import Loader

compose = docker_archive.compose
def dying_compose(images):
    for index, chunk in enumerate(compose(images)):
        if index == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # the module is killed while the engine reads the archive
        yield chunk
bundle_load_v2.compose = dying_compose
client = docker.DockerClient(base_url={docker_host!r}, version="auto")
loader = Loader(client, {docker_host!r})
manifest = bundle_load.bundle.load_manifest({bundle!r})
loader.load_v2({bundle!r}, manifest, [bundle_load.bundle.find_entry(manifest, {reference!r})])
"""


def test_a_load_killed_midway_leaves_no_image_and_a_rerun_loads_it(local_engine, test_images, v2_bundle, run, tmp_path):
    forget(local_engine, test_images, "multi")
    script = KILLER.format(paths=[p for p in sys.path if p], docker_host=local_engine.docker_host, bundle=v2_bundle,
                           reference=test_images.refs["multi"])
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert local_engine.image_id(test_images.refs["multi"]) is None and local_engine.image_id(test_images.ids["multi"]) is None
    rerun = run("image_load", {"bundle": v2_bundle, "images": [test_images.refs["multi"]]})
    assert not rerun["failed"] and rerun["images"][0]["action"] == "loaded", rerun["msg"]
    assert local_engine.image_id(test_images.refs["multi"]) == test_images.ids["multi"]
