"""Fault injection on the bytes path (issue 10): swapped files, kill -9 of image_save, a full disk.

Every resource made here is named fi-bytes-*: images built on the local engine for this module
only, bundles in tmp_path, tmpfs mounts under tmp_path that are unmounted at the end.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import uuid

import pytest

from save_killer import run_killed

from ansible_collections.fleet.images.plugins.module_utils import bundle, bundle_load, bundle_save, engine_io
from ansible_collections.fleet.images.plugins.module_utils.bundle_load import Loader

PREFIX = "fi-bytes"


def build_image(engine, tmp_path, name, marker, size=256 * 1024):
    """A small FROM-scratch image with random content, so no engine has it before this test."""
    context = tmp_path / ("ctx-%s-%s" % (name, uuid.uuid4().hex[:6]))
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY data.bin /data.bin\nLABEL fi-bytes=%s\n" % marker)
    (context / "data.bin").write_bytes(os.urandom(size))
    reference = "%s/%s:%s" % (PREFIX, name, marker)
    image, _logs = engine.client.images.build(path=str(context), tag=reference, rm=True, forcerm=True, pull=False)
    return reference, image.id


@pytest.fixture()
def images(local_engine, tmp_path):
    """Two images under one tag's life: `ref` points to A, `other` is B; both removed at the end."""
    marker = uuid.uuid4().hex[:10]
    made = {}
    made["a"] = build_image(local_engine, tmp_path, "a", marker)
    made["b"] = build_image(local_engine, tmp_path, "b", marker)
    yield made
    for reference, image_id in made.values():
        local_engine.remove(reference, image_id)
    local_engine.remove("%s/moving:%s" % (PREFIX, marker))


def listed_files(dest):
    with open(os.path.join(dest, "bundle.json")) as handle:
        return [entry["file"] for entry in json.load(handle)["images"]]


def assert_bundle_whole(dest, run):
    """What the brief asks after every fault: sha256sum -c passes, bundle_info verify passes, nothing listed is missing."""
    check = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=dest, capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    info = run("bundle_info", {"path": dest, "verify": True})
    assert not info["failed"], info["msg"]
    for name in listed_files(dest):
        assert os.path.isfile(os.path.join(dest, name)), name


# ---------------------------------------------------------------------------------------------
# The bytes hashed are the bytes loaded


def test_a_tarball_swapped_after_its_check_never_reaches_the_engine(local_engine, images, tmp_path, run, monkeypatch):
    good_ref, good_id = images["a"]
    evil_ref, evil_id = images["b"]
    good, evil = str(tmp_path / "good"), str(tmp_path / "evil")
    for dest, ref in ((good, good_ref), (evil, evil_ref)):
        saved = run("image_save", {"images": [ref], "dest": dest, "compression": "zstd", "pull": "never"})
        assert not saved["failed"], saved["msg"]
    local_engine.remove(good_ref, good_id, evil_ref, evil_id)
    entry = bundle.load_manifest(good)["images"][0]
    evil_file = os.path.join(evil, bundle.load_manifest(evil)["images"][0]["file"])
    target = os.path.join(good, entry["file"])

    checked = bundle.check_open_file

    def check_then_swap(path, handle, entry, verify=True, sha256_now=True):
        checked(path, handle, entry, verify, sha256_now)
        if sha256_now:
            os.replace(evil_file, target)  # a hostile writer wins the race right after the sha256 matched

    monkeypatch.setattr(bundle, "check_open_file", check_then_swap)
    loader = Loader(local_engine.client, local_engine.docker_host)
    result = loader.load_entry(good, entry)
    assert result["action"] == "loaded", result.get("error")
    assert local_engine.image_id(good_ref) == good_id
    assert local_engine.image_id(evil_id) is None, "the swapped-in tarball reached the engine"


def test_a_lone_tarball_swapped_after_its_check_never_reaches_the_engine(local_engine, images, tmp_path, run, monkeypatch):
    good_ref, good_id = images["a"]
    evil_ref, evil_id = images["b"]
    lone = {}
    for name, ref in (("good", good_ref), ("evil", evil_ref)):
        dest = str(tmp_path / name)
        saved = run("image_save", {"images": [ref], "dest": dest, "compression": "gzip", "pull": "never"})
        assert not saved["failed"], saved["msg"]
        lone[name] = (saved["images"][0]["path"], saved["images"][0]["sha256"])
    local_engine.remove(good_ref, good_id, evil_ref, evil_id)
    path, sha256 = lone["good"]

    described = bundle_load.describe_tarball

    def describe_then_swap(handle, label):
        found = described(handle, label)
        os.replace(lone["evil"][0], path)
        return found

    monkeypatch.setattr(bundle_load, "describe_tarball", describe_then_swap)
    loader = Loader(local_engine.client, local_engine.docker_host)
    loader.load_tarball(path, sha256)
    assert [result["action"] for result in loader.results] == ["loaded"]
    assert local_engine.image_id(good_ref) == good_id
    assert local_engine.image_id(evil_id) is None, "the swapped-in tarball reached the engine"


def test_a_symlink_or_fifo_in_place_of_a_tarball_is_refused(local_engine, images, tmp_path, run):
    ref, image_id = images["a"]
    dest = str(tmp_path / "bundle")
    saved = run("image_save", {"images": [ref], "dest": dest, "compression": "none", "pull": "never"})
    assert not saved["failed"], saved["msg"]
    local_engine.remove(ref, image_id)
    entry = bundle.load_manifest(dest)["images"][0]
    path = os.path.join(dest, entry["file"])
    os.rename(path, path + ".real")
    os.symlink(os.path.basename(path) + ".real", path)
    result = run("image_load", {"bundle": dest})
    assert result["failed"] is True
    assert "%s is a symbolic link; refusing to follow it" % path in result["msg"]
    os.unlink(path)
    os.mkfifo(path)
    result = run("image_load", {"bundle": dest})
    assert result["failed"] is True
    assert "%s is not a regular file (a FIFO)" % path in result["msg"]
    assert local_engine.image_id(image_id) is None


def test_a_given_sha256_is_checked_even_with_verify_off(local_engine, images, tmp_path, run):
    ref, image_id = images["a"]
    saved = run("image_save", {"images": [ref], "dest": str(tmp_path / "b"), "compression": "zstd", "pull": "never"})
    assert not saved["failed"], saved["msg"]
    local_engine.remove(ref, image_id)
    path = saved["images"][0]["path"]
    result = run("image_load", {"path": path, "sha256": "2" * 64, "verify": False})
    assert result["failed"] is True
    assert result["msg"] == "%s failed its checksum: expected sha256 %s, actual %s. No image was loaded from it" % (
        path, "2" * 64, saved["images"][0]["sha256"])
    assert local_engine.image_id(image_id) is None


# ---------------------------------------------------------------------------------------------
# image_save keeps the last good tarball: kill -9 at several points, full disk

@pytest.mark.parametrize("point", ["locked", "tarball-written", "tarball-renamed", "manifest-renamed", "sums-renamed"])
def test_kill_9_of_image_save_leaves_a_whole_bundle(local_engine, images, tmp_path, run, point):
    (a_ref, a_id), (_b_ref, b_id) = images["a"], images["b"]
    moving = "%s/moving:%s" % (PREFIX, a_ref.rsplit(":", 1)[1])
    local_engine.client.api.tag(a_id, moving.rsplit(":", 1)[0], moving.rsplit(":", 1)[1], force=True)
    dest = str(tmp_path / "bundle")
    params = {"images": [moving], "dest": dest, "compression": "zstd", "pull": "never"}
    first = run("image_save", params)
    assert not first["failed"], first["msg"]
    old_file = listed_files(dest)
    # the tag moves to another image: the next save replaces the tarball, and is killed on the way
    local_engine.client.api.tag(b_id, moving.rsplit(":", 1)[0], moving.rsplit(":", 1)[1], force=True)
    assert run_killed(params, point, tmp_path) == -signal.SIGKILL
    assert_bundle_whole(dest, run)
    if point in ("locked", "tarball-written", "tarball-renamed"):
        assert listed_files(dest) == old_file, "the last good tarball must stay listed until the new one is committed"
    rerun = run("image_save", params)
    assert not rerun["failed"], rerun["msg"]
    assert_bundle_whole(dest, run)
    assert bundle.load_manifest(dest)["images"][0]["image_id"] == b_id
    on_disk = sorted("images/" + name for name in os.listdir(os.path.join(dest, "images")))
    assert on_disk == listed_files(dest), "an interrupted save left files the next run did not clean"
    again = run("image_save", params)
    assert again["changed"] is False and all(image["action"] == "unchanged" for image in again["images"])


@pytest.fixture()
def small_disk(tmp_path):
    """An 8 MiB tmpfs, unmounted at the end."""
    mount_point = tmp_path / "fi-bytes-tmpfs"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "fi-bytes-tmpfs", str(mount_point)], check=True)
    try:
        yield str(mount_point)
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def fill(directory, leave):
    """Fill the file system of `directory` until only `leave` bytes stay free."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    with open(os.path.join(directory, "filler"), "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))


def test_a_full_disk_during_save_keeps_the_old_bundle(local_engine, tmp_path, run, small_disk):
    marker = uuid.uuid4().hex[:10]
    a_ref, a_id = build_image(local_engine, tmp_path, "disk-a", marker, size=1024 * 1024)
    b_ref, b_id = build_image(local_engine, tmp_path, "disk-b", marker, size=1024 * 1024)
    try:
        dest = os.path.join(small_disk, "bundle")
        moving = "%s/disk-moving:%s" % (PREFIX, marker)
        local_engine.client.api.tag(a_id, moving.rsplit(":", 1)[0], marker, force=True)
        params = {"images": [moving], "dest": dest, "compression": "none", "pull": "never"}
        first = run("image_save", params)
        assert not first["failed"], first["msg"]
        old_file = listed_files(dest)
        local_engine.client.api.tag(b_id, moving.rsplit(":", 1)[0], marker, force=True)
        fill(small_disk, 256 * 1024)
        result = run("image_save", params)
        assert result["failed"] is True
        assert result["msg"].startswith("no space left in %s while writing the tarball of %s" % (os.path.join(dest, "images"), moving)), result["msg"]
        assert "Traceback" not in json.dumps(result)
        assert listed_files(dest) == old_file
        assert_bundle_whole(dest, run)
        os.unlink(os.path.join(small_disk, "filler"))
        rerun = run("image_save", params)
        assert not rerun["failed"], rerun["msg"]
        assert_bundle_whole(dest, run)
    finally:
        local_engine.remove(a_ref, b_ref, "%s/disk-moving:%s" % (PREFIX, marker), a_id, b_id)


# ---------------------------------------------------------------------------------------------
# The engine dies during a load; its data root fills up during a load (a private dockerd: never the shared one)


@pytest.fixture()
def big_bundle(local_engine, tmp_path, run):
    """An uncompressed bundle of a 6 MiB image: a load of it is sent in many pieces."""
    marker = uuid.uuid4().hex[:10]
    reference, image_id = build_image(local_engine, tmp_path, "big", marker, size=6 * 1024 * 1024)
    dest = str(tmp_path / "big-bundle")
    try:
        saved = run("image_save", {"images": [reference], "dest": dest, "compression": "none", "pull": "never"})
        assert not saved["failed"], saved["msg"]
    finally:
        local_engine.remove(reference, image_id)
    return dest, reference, image_id


def kill_after_first_piece(monkeypatch, action):
    """Run `action` once the first piece of the tarball went to the engine: the rest meets whatever it did."""
    pieces = engine_io.iter_chunks

    def iter_then_act(reader, chunk_size):
        for number, piece in enumerate(pieces(reader, chunk_size)):
            yield piece
            if number == 0:
                action()

    monkeypatch.setattr(engine_io, "iter_chunks", iter_then_act)


def test_the_engine_dying_during_a_load_is_a_clear_failure(private_engine, big_bundle, monkeypatch):
    dest, reference, _image_id = big_bundle
    entry = bundle.load_manifest(dest)["images"][0]
    kill_after_first_piece(monkeypatch, private_engine.kill)
    loader = Loader(private_engine.client, private_engine.docker_host)
    result = loader.load_entry(dest, entry)
    assert loader.results == [] and loader.failed == [result]
    assert result["error"].startswith(
        "the Docker Engine %s stopped answering while loading %s (" % (private_engine.docker_host, entry["file"])), result["error"]
    assert result["error"].endswith("it stopped, restarted or crashed. Check that it runs (systemctl status docker, "
                                    "journalctl -u docker), then run the task again"), result["error"]


@pytest.fixture()
def engine_on_small_disk(tmp_path):
    """A private dockerd whose data root is a 24 MiB tmpfs."""
    from private_dockerd import PrivateEngine

    mount_point = tmp_path / "fi-bytes-data-root"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "fi-bytes-data-root", str(mount_point)], check=True)
    engine = None
    try:
        engine = PrivateEngine(data_root=str(mount_point / "docker"))
        yield engine, str(mount_point)
    finally:
        if engine is not None:
            engine.stop()
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_data_root_during_a_load_is_a_clear_failure(engine_on_small_disk, big_bundle, monkeypatch):
    engine, disk = engine_on_small_disk
    dest, _reference, image_id = big_bundle
    entry = bundle.load_manifest(dest)["images"][0]
    # the free-space check before the load passes; then the disk fills while the engine unpacks
    kill_after_first_piece(monkeypatch, lambda: fill(disk, 512 * 1024))
    loader = Loader(engine.client, engine.docker_host)
    result = loader.load_entry(dest, entry)
    assert loader.results == [] and loader.failed == [result]
    assert result["error"].startswith("the Docker Engine %s refused %s: " % (engine.docker_host, entry["file"])), result["error"]
    assert result["error"].endswith("; the disk is full: free space there (docker image prune, or remove files) and run the task again")
    assert engine.client.api.images(all=True) == []
    os.unlink(os.path.join(disk, "filler"))
    monkeypatch.undo()
    again = Loader(engine.client, engine.docker_host).load_entry(dest, entry)
    assert again["action"] == "loaded", again.get("error")
    assert engine.client.api.inspect_image(again["image_id"])["Id"] in (image_id, again["image_id"])


def test_a_full_disk_while_writing_bundle_json_keeps_the_old_bundle(local_engine, tmp_path, run, small_disk):
    marker = uuid.uuid4().hex[:10]
    a_ref, a_id = build_image(local_engine, tmp_path, "json-a", marker, size=1024 * 1024)
    b_ref, b_id = build_image(local_engine, tmp_path, "json-b", marker, size=1024 * 1024)
    try:
        # an uncompressed save of one image is byte-identical every time: measure the new tarball elsewhere
        measured = run("image_save", {"images": [b_ref], "dest": str(tmp_path / "measure"), "compression": "none", "pull": "never"})
        assert not measured["failed"], measured["msg"]
        page = os.statvfs(small_disk).f_frsize
        new_size = -(-measured["images"][0]["size"] // page) * page
        dest = os.path.join(small_disk, "bundle")
        moving = "%s/json-moving:%s" % (PREFIX, marker)
        local_engine.client.api.tag(a_id, moving.rsplit(":", 1)[0], marker, force=True)
        params = {"images": [moving], "dest": dest, "compression": "none", "pull": "never"}
        first = run("image_save", params)
        assert not first["failed"], first["msg"]
        old_file = listed_files(dest)
        local_engine.client.api.tag(b_id, moving.rsplit(":", 1)[0], marker, force=True)
        fill(small_disk, new_size)  # room for the new tarball, not one page more
        result = run("image_save", params)
        assert result["failed"] is True
        assert result["msg"] == ("no space left in %s while writing bundle.json: the bundle still holds what it held before "
                                 "this task. Free space there and run the task again" % dest), result["msg"]
        assert listed_files(dest) == old_file
        assert sorted(os.listdir(os.path.join(dest, "images"))) == [name.split("/", 1)[1] for name in old_file]
        assert_bundle_whole(dest, run)
    finally:
        local_engine.remove(a_ref, b_ref, "%s/json-moving:%s" % (PREFIX, marker), a_id, b_id)


def test_the_tag_moving_during_a_save_keeps_the_old_bundle(local_engine, images, tmp_path, run, monkeypatch):
    (a_ref, a_id), (b_ref, b_id) = images["a"], images["b"]
    marker = a_ref.rsplit(":", 1)[1]
    repository = "%s/moving" % PREFIX
    local_engine.client.api.tag(a_id, repository, marker, force=True)
    dest = str(tmp_path / "bundle")
    moving = "%s:%s" % (repository, marker)
    first = run("image_save", {"images": [moving], "dest": dest, "compression": "none", "pull": "never"})
    assert not first["failed"], first["msg"]
    old_file = listed_files(dest)
    # the tag moves to B, the save starts for B, and the tag moves back to A while the engine streams it
    local_engine.client.api.tag(b_id, repository, marker, force=True)
    api = local_engine.client.api
    get_image = api.get_image

    def moved_meanwhile(name, *args, **kwargs):
        api.tag(a_id, repository, marker, force=True)
        return get_image(name, *args, **kwargs)

    monkeypatch.setattr(api, "get_image", moved_meanwhile)
    with pytest.raises(engine_io.TransferError, match="image %s changed while it was being saved: the engine listed ID %s"
                       % (moving, b_id)):
        bundle_save.save_images(local_engine.client, dest, [moving], compression="none", pull="never")
    assert listed_files(dest) == old_file
    assert sorted("images/" + name for name in os.listdir(os.path.join(dest, "images"))) == old_file
    assert_bundle_whole(dest, run)


def test_the_engine_dying_during_a_save_keeps_the_old_bundle(private_engine, big_bundle, tmp_path, run, monkeypatch):
    source, reference, _image_id = big_bundle
    loaded = Loader(private_engine.client, private_engine.docker_host).load_entry(source, bundle.load_manifest(source)["images"][0])
    assert loaded["action"] == "loaded", loaded.get("error")
    dest = str(tmp_path / "saved")
    api = private_engine.client.api
    get_image = api.get_image

    def stream_then_die(*args, **kwargs):
        for number, chunk in enumerate(get_image(*args, **kwargs)):
            yield chunk
            if number == 0:
                private_engine.kill()

    monkeypatch.setattr(api, "get_image", stream_then_die)
    with pytest.raises(engine_io.TransferError) as caught:
        bundle_save.save_images(private_engine.client, dest, [reference], compression="zstd", pull="never",
                                engine_name=private_engine.docker_host)
    assert str(caught.value).startswith("the Docker Engine %s stopped answering while saving %s (" % (private_engine.docker_host, reference))
    assert os.listdir(os.path.join(dest, "images")) == [], "a cut-off tarball was left behind"
    assert not os.path.exists(os.path.join(dest, "bundle.json"))


# ---------------------------------------------------------------------------------------------
# Crafted lone tarballs through the module: a clear failure naming the file, no traceback, nothing loaded


def crafted_tarball(kind):
    buffer = io.BytesIO()
    manifest = b'{"Config": "x.json"}' if kind == "manifest.json an object" else b"[" * 50000 + b"]" * 50000
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
    data = bytearray(buffer.getvalue())
    if kind == "negative GNU base-256 size":
        data[124:136] = b"\xff" * 12  # -1 in base-256
        data[148:156] = b" " * 8
        data[148:156] = b"%06o\x00 " % sum(data[:512])
    return bytes(data)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind, reason", [
    ("negative GNU base-256 size", "has a negative size"),
    ("manifest.json an object", "manifest.json in the archive is not a list of images"),
    ("deeply nested manifest.json", "manifest.json in the archive nests its JSON too deeply to be read"),
])
def test_a_crafted_lone_tarball_is_a_clear_failure(kind, reason, tmp_path, run):
    path = tmp_path / "crafted.tar"
    path.write_bytes(crafted_tarball(kind))
    for params in ({"verify": False}, {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()}):
        result = run("image_load", dict(params, path=str(path)))
        assert result["failed"] is True
        assert result["msg"].startswith("%s is not a usable image archive: " % path), result["msg"]
        assert reason in result["msg"] and result["msg"].endswith(". No image was loaded from it")
        assert "exception" not in result and "Traceback" not in json.dumps(result)
