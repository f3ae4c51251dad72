"""Bad input, each with its message asserted, and afterwards the engine holds no image from the bad file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil

import pytest

from ports import free_port
from module_runner import with_action
# A size as Ansible's bytes_to_human writes it (1.50 KB, 10.00 GB, 1000.00 PB).
HUMAN = r"[\d.]+ (?:Bytes|[KMGTPEZY]B)"


@pytest.fixture(scope="session")
def bad_bundle(test_images, local_engine, tmp_path_factory, module_runner):
    """A zstd bundle of the `bad` image (then removed from the local engine) and the good `multi` image."""
    dest = str(tmp_path_factory.mktemp("bad-bundle"))
    refs = [test_images.refs["bad"], test_images.refs["multi"]]
    result = module_runner("image_save", {"images": refs, "dest": dest, "compression": "zstd", "pull": "never"})
    assert not result["failed"], result["msg"]
    local_engine.remove(test_images.refs["bad"])
    with open(os.path.join(dest, "bundle.json")) as handle:
        manifest = json.load(handle)
    return dest, manifest


@pytest.fixture()
def damaged(bad_bundle, tmp_path, target, test_images):
    """A private copy of the bad bundle, and a target engine without the bad image."""
    source, manifest = bad_bundle
    directory = str(tmp_path / "bundle")
    shutil.copytree(source, directory)
    target.remove(test_images.refs["bad"])
    entry = manifest["images"][0]
    return directory, entry, os.path.join(directory, entry["file"])


def assert_bad_image_absent(engine, test_images):
    assert engine.image_id(test_images.refs["bad"]) is None, "the engine has the tag of the bad image"
    assert engine.image_id(test_images.ids["bad"]) is None, "the engine has the image from the bad file"


def load_bad(run, directory, target, **extra):
    return run("image_load", dict({"bundle": directory, "docker_host": target.docker_host}, **extra))


def sha256_of(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_flipped_byte(damaged, target, test_images, run):
    directory, entry, path = damaged
    with open(path, "r+b") as handle:
        handle.seek(entry["size"] // 2)
        byte = handle.read(1)
        handle.seek(entry["size"] // 2)
        handle.write(bytes([byte[0] ^ 0x01]))
    result = load_bad(run, directory, target, images=[test_images.refs["bad"]])
    assert result["failed"] is True
    assert result["msg"] == "%s failed its checksum: expected sha256 %s, actual %s. No image was loaded from it" % (
        path, entry["sha256"], sha256_of(path))
    assert result["images"] == [] and result["failed_images"][0]["references"] == [test_images.refs["bad"]]
    assert_bad_image_absent(target, test_images)


def test_truncated_tarball(damaged, target, test_images, run):
    directory, entry, path = damaged
    with open(path, "r+b") as handle:
        handle.truncate(entry["size"] - 4096)
    result = load_bad(run, directory, target, images=[test_images.refs["bad"]])
    assert result["failed"] is True
    assert result["msg"] == (
        "%s is truncated: it has %d bytes, bundle.json records %d; expected sha256 %s, actual %s. No image was loaded from it"
        % (path, entry["size"] - 4096, entry["size"], entry["sha256"], sha256_of(path)))
    assert_bad_image_absent(target, test_images)


def test_truncated_tarball_is_refused_even_without_verify(damaged, target, test_images, run):
    directory, entry, path = damaged
    with open(path, "r+b") as handle:
        handle.truncate(entry["size"] // 3)
    result = load_bad(run, directory, target, images=[test_images.refs["bad"]], verify=False)
    assert result["failed"] is True
    assert "is truncated: it has %d bytes, bundle.json records %d" % (entry["size"] // 3, entry["size"]) in result["msg"]
    assert "actual not computed (verify is off)" in result["msg"]
    assert_bad_image_absent(target, test_images)


def test_missing_tarball(damaged, target, test_images, run):
    directory, entry, path = damaged
    os.unlink(path)
    result = load_bad(run, directory, target, images=[test_images.refs["bad"]])
    assert result["failed"] is True
    assert result["msg"] == "%s is missing: bundle.json expects it (%d bytes, sha256 %s) for %s; actual: no file. No image was loaded from it" % (
        path, entry["size"], entry["sha256"], test_images.refs["bad"])
    assert_bad_image_absent(target, test_images)


def test_good_images_load_and_the_bad_one_is_named(damaged, target, test_images, run):
    directory, entry, path = damaged
    target.remove(test_images.refs["multi"])
    with open(path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\xff\x00\xff")
    result = load_bad(run, directory, target)
    assert result["failed"] is True and result["changed"] is True
    assert result["msg"].startswith("%s failed its checksum: expected sha256 %s, actual " % (path, entry["sha256"]))
    assert [item["references"] for item in with_action(result, "loaded")] == [[test_images.refs["multi"]]]
    assert target.image_id(test_images.refs["multi"]) == test_images.ids["multi"]
    assert_bad_image_absent(target, test_images)


def test_manifest_that_is_not_json(damaged, target, test_images, run):
    directory, _entry, _path = damaged
    text = '{"format": "fleet.images/bundle", "version": 1, "images": ['
    with open(os.path.join(directory, "bundle.json"), "w") as handle:
        handle.write(text)
    with pytest.raises(ValueError) as parser:
        json.loads(text)
    result = load_bad(run, directory, target)
    assert result["failed"] is True
    assert result["msg"] == ("%s is not valid JSON (%s): the manifest is damaged; copy bundle.json again from the original bundle"
                             % (os.path.join(directory, "bundle.json"), parser.value))
    assert "line 1 column" in result["msg"]
    assert_bad_image_absent(target, test_images)


def test_manifest_naming_a_file_outside_the_bundle(damaged, target, test_images, run):
    directory, entry, path = damaged
    # a perfectly good tarball, with the right checksum, but outside the bundle
    outside = os.path.join(os.path.dirname(directory), "outside.tar.zst")
    shutil.copy(path, outside)
    with open(os.path.join(directory, "bundle.json")) as handle:
        manifest = json.load(handle)
    manifest["images"][0]["file"] = "../outside.tar.zst"
    with open(os.path.join(directory, "bundle.json"), "w") as handle:
        json.dump(manifest, handle)
    result = load_bad(run, directory, target)
    assert result["failed"] is True
    assert result["msg"] == (
        "bundle %s: file '../outside.tar.zst' is outside the bundle or not a plain relative path (bundle.json entry for %s); "
        "refusing it (file names must stay inside the bundle directory: no absolute path, no '..')" % (directory, test_images.refs["bad"]))
    assert_bad_image_absent(target, test_images)


def test_newer_manifest_version_is_refused(damaged, target, test_images, run):
    directory, _entry, _path = damaged
    with open(os.path.join(directory, "bundle.json")) as handle:
        manifest = json.load(handle)
    manifest["version"] = 3
    with open(os.path.join(directory, "bundle.json"), "w") as handle:
        json.dump(manifest, handle)
    result = load_bad(run, directory, target)
    assert result["failed"] is True
    assert result["msg"] == (
        "%s is bundle format version 3, but this fleet.images reads version 2 and older: it was written by a newer fleet.images. "
        "Upgrade the fleet.images collection where this task runs." % os.path.join(directory, "bundle.json"))
    assert_bad_image_absent(target, test_images)


def test_sha256sums_disagreeing_with_the_manifest(damaged, target, test_images, run):
    directory, entry, _path = damaged
    with open(os.path.join(directory, "SHA256SUMS")) as handle:
        sums = handle.read()
    with open(os.path.join(directory, "SHA256SUMS"), "w") as handle:
        handle.write(sums.replace(entry["sha256"], "0" * 64))
    result = load_bad(run, directory, target, images=[test_images.refs["bad"]])
    assert result["failed"] is True
    assert result["msg"] == (
        "bundle %s disagrees with itself about %s: bundle.json records sha256 %s, SHA256SUMS lists %s. One of them was edited "
        "or damaged; copy the bundle again. No image was loaded from it" % (directory, entry["file"], entry["sha256"], "0" * 64))
    assert_bad_image_absent(target, test_images)


def test_not_enough_space_gives_needed_and_free_bytes(damaged, target, test_images, run):
    directory, entry, _path = damaged
    result = load_bad(run, directory, target, images=[test_images.refs["bad"]], keep_free="1000P")
    assert result["failed"] is True
    match = re.match(
        r"^not enough space to load %s: the engine's data root /var/lib/docker needs about (\d+) bytes \(%s\) and keep_free "
        r"asks to leave (\d+) bytes \(%s\) free, but (\d+) bytes \(%s\) are free \(the archive is (\d+) bytes uncompressed "
        r"and is unpacked before it is imported\); free space there or prune unused images\. "
        r"No image was loaded from it$" % (re.escape(entry["file"]), HUMAN, HUMAN, HUMAN), result["msg"])
    assert match, result["msg"]
    needed, keep_free, free, uncompressed = (int(value) for value in match.groups())
    assert needed == 2 * uncompressed == 2 * entry["uncompressed_size"]
    assert keep_free == 1000 * 1024 ** 5 and free > 0
    assert_bad_image_absent(target, test_images)
    assert "warnings" not in result, "the data root should be measurable for %s" % target.name


def test_unknown_image_in_bundle_lists_what_it_holds(damaged, target, test_images, run):
    directory, _entry, _path = damaged
    result = load_bad(run, directory, target, images=["itest-bundle/nope:1"])
    assert result["failed"] is True
    assert result["msg"] == "bundle %s has no image itest-bundle/nope:1; it holds: %s, %s" % (
        directory, test_images.refs["bad"], test_images.refs["multi"])
    assert_bad_image_absent(target, test_images)


# --- the connected side, and engines that cannot be reached -----------------------------------

def test_image_that_does_not_exist_on_the_connected_side(test_images, local_engine, run, tmp_path):
    dest = str(tmp_path / "bundle")
    missing = "itest-bundle/nope:%s" % test_images.marker
    result = run("image_save", {"images": [test_images.refs["multi"], missing], "dest": dest, "pull": "never"})
    assert result["failed"] is True
    assert result["msg"] == ("image %s does not exist on the engine unix:///var/run/docker.sock and pull is never: pull or build it first, "
                             "or set pull: missing" % missing)
    # nothing was written for the good image either: every image is resolved before any is saved
    assert os.listdir(os.path.join(dest, "images")) == [] and not os.path.exists(os.path.join(dest, "bundle.json"))


def test_pull_from_a_registry_that_does_not_answer(test_images, run, tmp_path):
    reference = "127.0.0.1:%d/itest-bundle/nope:%s" % (free_port(), test_images.marker)
    result = run("image_save", {"images": [reference], "dest": str(tmp_path / "bundle"), "pull": "missing"})
    assert result["failed"] is True
    assert result["msg"].startswith("pulling %s failed: " % reference)
    assert "connection refused" in result["msg"]


@pytest.mark.parametrize("module, params", [
    ("image_save", {"images": ["itest-bundle/any:1"], "dest": "/tmp/itest-bundle-never-created"}),
    ("image_load", {"path": "/tmp/itest-bundle-never-read.tar", "verify": False}),
])
def test_unreachable_engine(module, params, run, tmp_path):
    socket_path = str(tmp_path / "docker.sock")
    result = run(module, dict(params, docker_host="unix://" + socket_path))
    assert result["failed"] is True
    assert result["msg"] == ("Cannot reach the Docker Engine at unix://%s: the socket does not exist. Is dockerd running on this host? "
                             "Start it (systemctl start docker) or set docker_host to the engine's address." % socket_path)
    port = free_port()
    result = run(module, dict(params, docker_host="tcp://127.0.0.1:%d" % port, timeout=5))
    assert result["failed"] is True
    assert result["msg"].startswith("Cannot reach the Docker Engine at tcp://127.0.0.1:%d: connection refused." % port)
    assert not os.path.exists("/tmp/itest-bundle-never-created")


def test_damaged_manifest_on_the_saving_side_is_kept_unless_forced(test_images, run, tmp_path):
    dest = str(tmp_path / "bundle")
    os.makedirs(dest)
    with open(os.path.join(dest, "bundle.json"), "w") as handle:
        handle.write("not json")
    params = {"images": [test_images.refs["multi"]], "dest": dest, "pull": "never"}
    result = run("image_save", params)
    assert result["failed"] is True
    assert result["msg"].startswith("%s is not valid JSON (Expecting value: line 1 column 1 (char 0))" % os.path.join(dest, "bundle.json"))
    assert result["msg"].endswith("Repair or remove it, or set force: true to start a new manifest in %s" % dest)
    assert open(os.path.join(dest, "bundle.json")).read() == "not json"
    forced = run("image_save", dict(params, force=True))
    assert not forced["failed"], forced["msg"]
    assert json.load(open(os.path.join(dest, "bundle.json")))["images"][0]["references"] == [test_images.refs["multi"]]


def test_dest_that_is_a_file(test_images, run, tmp_path):
    dest = tmp_path / "file"
    dest.write_text("x")
    result = run("image_save", {"images": [test_images.refs["multi"]], "dest": str(dest)})
    assert result["failed"] is True
    assert result["msg"] == "bundle %s exists and is not a directory: a bundle is a directory" % dest


def test_lone_tarball_without_any_checksum(bad_bundle, target, test_images, run, tmp_path):
    source, manifest = bad_bundle
    lone = str(tmp_path / "lone.tar.zst")
    shutil.copy(os.path.join(source, manifest["images"][0]["file"]), lone)
    target.remove(test_images.refs["bad"])
    result = run("image_load", {"path": lone, "docker_host": target.docker_host})
    assert result["failed"] is True
    assert result["msg"] == ("no checksum to verify %s against: give sha256, put it next to a SHA256SUMS that lists it, "
                             "or set verify: false. No image was loaded from it" % lone)
    wrong = run("image_load", {"path": lone, "sha256": "1" * 64, "docker_host": target.docker_host})
    assert wrong["failed"] is True
    assert wrong["msg"] == "%s failed its checksum: expected sha256 %s, actual %s. No image was loaded from it" % (
        lone, "1" * 64, manifest["images"][0]["sha256"])
    assert_bad_image_absent(target, test_images)
