"""Round trips through image_save and image_load, on both engine generations, with every compression.

Save from this machine's engine (Docker 20.10, docker-archive), load on an engine that has none of
the images (this machine's after removing them, and a trixie lab host's Docker 26); save on
Docker 26 (OCI layout) and load back on 20.10. The second run changes nothing and reads no
tarball: the tarballs are overwritten with garbage of the same size in between.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time

import pytest

from ansible_collections.fleet.images.plugins.module_utils.compression import detect_file, iter_chunks, open_decompressed
from module_runner import with_action

COMPRESSIONS = ["none", "gzip", "zstd"]


@pytest.fixture(autouse=True)
def local_images_back(request, local_engine, test_images):
    """Whatever a test did, the local engine ends with the round-trip images (other tests save them)."""
    yield
    if all(local_engine.image_id(ref) == test_images.ids[ref.split("/")[1].split(":")[0]] for ref in test_images.round_trip):
        return
    bundles = request.getfixturevalue("bundles")
    with open(os.path.join(bundles["none"], "bundle.json")) as handle:
        manifest = json.load(handle)
    for entry in manifest["images"]:
        with open(os.path.join(bundles["none"], entry["file"]), "rb") as handle:
            list(local_engine.client.api.load_image(handle))
        for tag in entry["tags"]:
            repository, name = tag.rsplit(":", 1)
            local_engine.client.api.tag(entry["config_digest"], repository, name, force=True)


def remove_round_trip_images(engine, test_images):
    engine.remove(*test_images.round_trip + [test_images.refs["shared-base"]])
    # by ID as well: an image can also be held by another name (a repo digest after a pull, say)
    engine.remove(*[test_images.ids[short(ref)] for ref in test_images.round_trip])
    for ref in test_images.round_trip:
        assert engine.image_id(ref) is None
        assert engine.image_id(test_images.ids[ref.split("/")[1].split(":")[0]]) is None


def garble_tarballs(bundle_dir):
    """Overwrite every tarball with random bytes of the same size: any read of one would now fail."""
    with open(os.path.join(bundle_dir, "bundle.json")) as handle:
        manifest = json.load(handle)
    for entry in manifest["images"]:
        path = os.path.join(bundle_dir, entry["file"])
        with open(path, "r+b") as handle:
            handle.write(os.urandom(entry["size"]))
        assert os.path.getsize(path) == entry["size"]


def short(ref):
    return ref.split("/")[1].split(":")[0]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_save_check_mode_then_write_then_nothing(compression, local_engine, test_images, run, tmp_path):
    dest = str(tmp_path / "bundle")
    params = {"images": test_images.round_trip, "dest": dest, "compression": compression, "pull": "never"}

    check = run("image_save", params, check=True, diff=True)
    assert not check["failed"], check["msg"]
    assert check["changed"] is True
    assert [image["action"] for image in check["images"]] == ["saved"] * 3
    assert check["msg"] == "would write 3 of 3 image(s) into %s" % dest
    assert not os.path.exists(dest), "check mode created the bundle directory"
    assert test_images.refs["multi"] in check["diff"]["after"] and check["diff"]["before"] == ""

    first = run("image_save", params, diff=True)
    assert not first["failed"], first["msg"]
    assert first["changed"] is True
    assert first["msg"] == "wrote 3 of 3 image(s) into %s" % dest
    with open(os.path.join(dest, "bundle.json")) as handle:
        manifest = json.load(handle)
    assert manifest["format"] == "fleet.images/bundle" and manifest["version"] == 1
    assert first["diff"]["after"] == open(os.path.join(dest, "bundle.json")).read()
    for image, entry, ref in zip(first["images"], manifest["images"], test_images.round_trip):
        attrs = local_engine.client.api.inspect_image(ref)
        assert image["reference"] == ref and image["action"] == "saved"
        assert image["image_id"] == entry["image_id"] == entry["config_digest"] == attrs["Id"] == test_images.ids[short(ref)]
        assert entry["references"] == entry["tags"] == [ref]
        assert (entry["os"], entry["architecture"]) == (attrs["Os"], attrs["Architecture"])
        assert entry["compression"] == compression and entry["archive_format"] == "docker-archive"
        path = os.path.join(dest, entry["file"])
        assert image["path"] == path and image["size"] == entry["size"] == os.path.getsize(path)
        assert image["sha256"] == entry["sha256"]
        assert detect_file(path) == compression
        assert entry["uncompressed_size"] == sum(len(block) for block in iter_chunks(open_decompressed(path)))
        assert "/" not in os.path.basename(entry["file"]) and ":" not in entry["file"] and "@" not in entry["file"]
    # the operator's own check, with coreutils
    proc = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=dest, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.count(": OK") == 3, proc.stdout + proc.stderr
    assert sorted(os.listdir(os.path.join(dest, "images"))) == sorted(os.path.basename(entry["file"]) for entry in manifest["images"])

    check_again = run("image_save", params, check=True)
    assert check_again["changed"] is False and all(image["action"] == "unchanged" for image in check_again["images"])
    again = run("image_save", params, diff=True)
    assert again["changed"] is False, again
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["msg"] == "the bundle %s already holds all 3 image(s)" % dest
    assert [image["sha256"] for image in again["images"]] == [entry["sha256"] for entry in manifest["images"]]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_round_trip_onto_an_engine_without_the_images(compression, target, bundles, test_images, run, tmp_path, local_engine):
    bundle_dir = str(tmp_path / "bundle")
    shutil.copytree(bundles[compression], bundle_dir)
    remove_round_trip_images(target, test_images)
    params = {"bundle": bundle_dir, "docker_host": target.docker_host}

    check = run("image_load", params, check=True, diff=True)
    assert not check["failed"], check["msg"]
    assert check["changed"] is True
    assert check["msg"] == "would load 3, tag 0, leave 0 image(s) unchanged"
    assert [item["references"] for item in with_action(check, "loaded")] == [[ref] for ref in test_images.round_trip]
    assert check["diff"]["before"] == {ref: None for ref in test_images.round_trip}
    assert check["diff"]["after"] == {ref: test_images.ids[short(ref)] for ref in test_images.round_trip}
    assert all(target.image_id(ref) is None for ref in test_images.round_trip), "check mode loaded something"

    first = run("image_load", params)
    assert not first["failed"], first["msg"]
    assert first["changed"] is True
    assert first["msg"] == "loaded 3, tagged 0, left 0 image(s) unchanged"
    assert with_action(first, "unchanged") == [] and with_action(first, "tagged") == []
    for item, ref in zip(with_action(first, "loaded"), test_images.round_trip):
        assert item["references"] == item["tags"] == [ref]
        assert item["image_id"] == test_images.ids[short(ref)]
        assert target.image_id(ref) == test_images.ids[short(ref)], "tag %s not restored on %s" % (ref, target.name)
    assert all(image["verified"] for image in first["images"])
    layers = {short(ref): target.client.api.inspect_image(ref)["RootFS"]["Layers"] for ref in test_images.round_trip}
    assert layers["shared-a"][:2] == layers["shared-b"][:2], "the shared base layers differ"
    assert len(layers["multi"]) == 3

    garble_tarballs(bundle_dir)
    started = time.monotonic()
    second = run("image_load", params, diff=True)
    elapsed = time.monotonic() - started
    assert not second["failed"], second["msg"]
    assert second["changed"] is False
    assert second["msg"] == "loaded 0, tagged 0, left 3 image(s) unchanged"
    assert [item["image_id"] for item in with_action(second, "unchanged")] == [test_images.ids[short(ref)] for ref in test_images.round_trip]
    assert second["diff"]["before"] == second["diff"]["after"]
    assert elapsed < 10, "a run that loads nothing took %.1fs" % elapsed

    # the saving side does not read its tarballs either: same IDs and sizes mean nothing to write
    resave = run("image_save", {"images": test_images.round_trip, "dest": bundle_dir, "compression": compression, "pull": "never"})
    assert resave["changed"] is False, resave


def test_a_missing_tag_is_restored_without_reading_the_tarball(target, bundles, test_images, run, tmp_path):
    bundle_dir = str(tmp_path / "bundle")
    shutil.copytree(bundles["zstd"], bundle_dir)
    remove_round_trip_images(target, test_images)
    assert not run("image_load", {"bundle": bundle_dir, "docker_host": target.docker_host})["failed"]
    multi = test_images.refs["multi"]
    # keep the image alive under another name, drop the recorded tag
    target.client.api.tag(multi, "itest-bundle/keepalive", test_images.marker)
    target.client.api.remove_image(multi)
    garble_tarballs(bundle_dir)

    result = run("image_load", {"bundle": bundle_dir, "docker_host": target.docker_host, "images": [multi]}, diff=True)
    assert not result["failed"], result["msg"]
    assert result["changed"] is True
    assert [(item["references"], item["tags"], item["image_id"], item["bytes"], item["files"]) for item in with_action(result, "tagged")] == [
        ([multi], [multi], test_images.ids["multi"], 0, [])]
    assert result["images"][0]["tags_set"] == [multi]
    assert result["diff"] == {"before": {multi: None}, "after": {multi: test_images.ids["multi"]}}
    assert target.image_id(multi) == test_images.ids["multi"]
    target.remove("itest-bundle/keepalive:%s" % test_images.marker)


@pytest.fixture(scope="session")
def docker26_bundle(trixie_engine, bundles, test_images, tmp_path_factory, module_runner):
    """The round-trip images saved by Docker 26 (OCI layout), after loading them there from the 20.10 bundle."""
    trixie_engine.remove(*test_images.round_trip)
    loaded = module_runner("image_load", {"bundle": bundles["zstd"], "docker_host": trixie_engine.docker_host})
    assert not loaded["failed"], loaded["msg"]
    dest = str(tmp_path_factory.mktemp("from-docker-26"))
    saved = module_runner("image_save", {"images": test_images.round_trip, "dest": dest, "docker_host": trixie_engine.docker_host,
                                         "compression": "zstd", "pull": "never"})
    assert not saved["failed"], saved["msg"]
    assert saved["changed"] is True
    return dest


def test_save_on_docker_26_writes_the_oci_layout(docker26_bundle, test_images, tmp_path):
    with open(os.path.join(docker26_bundle, "bundle.json")) as handle:
        manifest = json.load(handle)
    for entry, ref in zip(manifest["images"], test_images.round_trip):
        assert entry["archive_format"] == "oci+docker-archive"
        assert entry["config_digest"] == entry["image_id"] == test_images.ids[short(ref)]
        assert entry["manifest_digest"].startswith("sha256:") and entry["manifest_digest"] != entry["config_digest"]
        # really the OCI layout Docker 26 writes
        plain = str(tmp_path / "plain.tar")
        with open(plain, "wb") as handle:
            for block in iter_chunks(open_decompressed(os.path.join(docker26_bundle, entry["file"]))):
                handle.write(block)
        with tarfile.open(plain) as archive:
            names = archive.getnames()
        assert {"index.json", "oci-layout", "manifest.json"} <= set(names)
        assert "blobs/sha256/" + entry["manifest_digest"].split(":")[1] in names


def test_docker_26_bundle_loads_on_both_generations(docker26_bundle, target, test_images, run):
    remove_round_trip_images(target, test_images)
    loaded = run("image_load", {"bundle": docker26_bundle, "docker_host": target.docker_host})
    assert not loaded["failed"], loaded["msg"]
    assert [item["image_id"] for item in with_action(loaded, "loaded")] == [test_images.ids[short(ref)] for ref in test_images.round_trip]
    for ref in test_images.round_trip:
        assert target.image_id(ref) == test_images.ids[short(ref)]
    again = run("image_load", {"bundle": docker26_bundle, "docker_host": target.docker_host})
    assert again["changed"] is False and len(with_action(again, "unchanged")) == 3


@pytest.mark.parametrize("source", ["docker 20.10 docker-archive", "docker 26 OCI layout"])
def test_containerd_image_store_finds_what_it_loaded(source, containerd_engine, bundles, docker26_bundle, test_images, run, tmp_path):
    """In the containerd store image IDs are manifest digests; 'already present' must still hold."""
    bundle_dir = str(tmp_path / "bundle")
    shutil.copytree(bundles["zstd"] if source.startswith("docker 20.10") else docker26_bundle, bundle_dir)
    containerd_engine.remove(*test_images.round_trip)
    params = {"bundle": bundle_dir, "docker_host": containerd_engine.docker_host}
    first = run("image_load", params)
    assert not first["failed"], first["msg"]
    assert first["changed"] is True and len(with_action(first, "loaded")) == 3
    for item, ref in zip(with_action(first, "loaded"), test_images.round_trip):
        assert containerd_engine.image_id(ref) == item["image_id"]
        # the containerd store names images by manifest digest, not by config digest
        assert item["image_id"] != test_images.ids[short(ref)]
        config = containerd_engine.client.api.inspect_image(ref)
        assert config["RootFS"]["Layers"] == local_layers(test_images, ref)

    garble_tarballs(bundle_dir)
    second = run("image_load", params)
    assert not second["failed"], second["msg"]
    assert second["changed"] is False
    assert [item["image_id"] for item in with_action(second, "unchanged")] == [item["image_id"] for item in with_action(first, "loaded")]

    multi = test_images.refs["multi"]
    containerd_engine.client.api.tag(multi, "itest-bundle/keepalive", test_images.marker)
    containerd_engine.client.api.remove_image(multi)
    retag = run("image_load", dict(params, images=[multi]))
    assert not retag["failed"], retag["msg"]
    assert retag["changed"] is True and with_action(retag, "tagged")[0]["image_id"] == with_action(first, "loaded")[0]["image_id"]
    containerd_engine.remove("itest-bundle/keepalive:%s" % test_images.marker)


def local_layers(test_images, ref):
    import docker

    return docker.DockerClient(base_url="unix:///var/run/docker.sock").api.inspect_image(test_images.ids[short(ref)])["RootFS"]["Layers"]


def test_single_tarball_with_its_checksum(target, bundles, test_images, run):
    with open(os.path.join(bundles["gzip"], "bundle.json")) as handle:
        entry = json.load(handle)["images"][0]
    path = os.path.join(bundles["gzip"], entry["file"])
    remove_round_trip_images(target, test_images)

    loaded = run("image_load", {"path": path, "sha256": "sha256:" + entry["sha256"], "docker_host": target.docker_host})
    assert not loaded["failed"], loaded["msg"]
    assert loaded["changed"] is True
    assert with_action(loaded, "loaded")[0]["image_id"] == entry["config_digest"] and with_action(loaded, "loaded")[0]["tags"] == entry["tags"]
    assert target.image_id(entry["tags"][0]) == entry["config_digest"]

    # without sha256, the SHA256SUMS of the bundle the file sits in is used
    again = run("image_load", {"path": path, "docker_host": target.docker_host})
    assert not again["failed"], again["msg"]
    assert again["changed"] is False and with_action(again, "unchanged")[0]["image_id"] == entry["config_digest"]
