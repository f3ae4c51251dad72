"""image_save format_version 2 against real engines: blobs, dedupe, differential, idempotence, kill -9, full disk, damage.

Both engine generations: this machine's Docker 20.10 (docker-archive) and a trixie lab host's
Docker 26 (OCI layout). Resources made here are named fi-a-*: images built for these tests, bundles
in tmp_path, tmpfs mounts under tmp_path that are unmounted at the end.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest
import zstandard

from module_runner import COLLECTIONS_ROOT
from save_killer import run_killed

from ansible_collections.fleet.images.plugins.module_utils import bundle

PREFIX = "fi-a"


def v2_save(run, images, dest, **extra):
    result = run("image_save", dict({"images": images, "bundle": dest, "format_version": 2, "pull": "never"}, **extra))
    assert not result["failed"], result["msg"]
    return result


def blob_files(dest):
    directory = os.path.join(dest, "blobs", "sha256")
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def assert_whole(dest, run, sums_may_lag=False):
    """bundle.json lists only complete blobs (strict load, bundle_info verify); sha256sum -c passes (index.json may lag after a kill)."""
    manifest = bundle.load_manifest(dest)
    info = run("bundle_info", {"bundle": dest, "verify": True})
    assert not info["failed"], info["msg"]
    check = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=dest, capture_output=True, text=True, check=False)
    failed = [line for line in check.stdout.splitlines() if not line.endswith(": OK")]
    assert failed == ([] if not sums_may_lag else [line for line in failed if line.startswith("index.json:")]), check.stdout + check.stderr
    return manifest


@pytest.fixture(scope="module")
def full_v2(test_images, tmp_path_factory, module_runner):
    """The round-trip images (two of them share a base) saved as a version 2 bundle from the local Docker 20.10."""
    dest = str(tmp_path_factory.mktemp("fi-a-v2"))
    result = module_runner("image_save", {"images": test_images.round_trip, "bundle": dest, "format_version": 2, "pull": "never"})
    assert not result["failed"], result["msg"]
    return dest, result


def test_a_v2_bundle_holds_every_blob_once_and_is_an_oci_layout(full_v2, test_images, run):
    dest, result = full_v2
    assert result["changed"] is True and [item["action"] for item in result["images"]] == ["saved"] * 3
    manifest = assert_whole(dest, run)
    assert blob_files(dest) == sorted(digest[len("sha256:"):] for digest in bundle.carried_blobs(manifest))
    by_ref = {entry["references"][0]: entry for entry in manifest["images"]}
    shared_a, shared_b = by_ref[test_images.refs["shared-a"]], by_ref[test_images.refs["shared-b"]]
    assert shared_a["layers"][:-1] == shared_b["layers"][:-1]  # the shared base's layers: one blob each
    diff_ids = [layer["diff_id"] for entry in manifest["images"] for layer in entry["layers"]]
    layer_blobs = {layer["digest"] for entry in manifest["images"] for layer in entry["layers"]}
    assert len(layer_blobs) == len(set(diff_ids)) < len(diff_ids)
    assert sum(item["bytes"] for item in result["images"]) == sum(bundle.carried_blobs(manifest).values())
    for entry in manifest["images"]:
        assert entry["config"]["digest"] == entry["image_id"] == test_images.ids[entry["references"][0].split("/")[1].split(":")[0]]
        with open(bundle.blob_path(dest, entry["config"]["digest"]), "rb") as handle:
            assert json.load(handle)["rootfs"]["diff_ids"] == [layer["diff_id"] for layer in entry["layers"]]
        with open(bundle.blob_path(dest, entry["manifest"]["digest"]), "rb") as handle:
            oci = json.load(handle)
        assert [layer["digest"] for layer in oci["layers"]] == [layer["digest"] for layer in entry["layers"]]
        assert {layer["mediaType"] for layer in oci["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    layer = shared_a["layers"][0]
    with gzip.open(bundle.blob_path(dest, layer["digest"]), "rb") as handle:
        plain = handle.read()
    assert "sha256:" + hashlib.sha256(plain).hexdigest() == layer["diff_id"] and len(plain) == layer["diff_size"]
    with open(os.path.join(dest, "oci-layout")) as handle:
        assert json.load(handle) == {"imageLayoutVersion": "1.0.0"}
    with open(os.path.join(dest, "index.json")) as handle:
        index = json.load(handle)
    assert [item["annotations"]["org.opencontainers.image.ref.name"] for item in index["manifests"]] == test_images.round_trip
    info = run("bundle_info", {"bundle": dest, "verify": True})
    assert [item["action"] for item in info["images"]] == ["verified"] * 3 and info["unlisted_blobs"] == []


def test_a_second_save_moves_no_byte_and_rewrites_nothing(full_v2, test_images, run):
    dest, _result = full_v2
    before = {name: os.stat(os.path.join(dest, "blobs", "sha256", name)).st_mtime_ns for name in blob_files(dest)}
    with open(os.path.join(dest, "bundle.json"), "rb") as handle:
        text = handle.read()
    for check in (True, False):
        again = run("image_save", {"images": test_images.round_trip, "bundle": dest, "format_version": 2, "pull": "never"}, check=check)
        assert again["changed"] is False, again
        assert [(item["action"], item["bytes"]) for item in again["images"]] == [("unchanged", 0)] * 3
    with open(os.path.join(dest, "bundle.json"), "rb") as handle:
        assert handle.read() == text
    assert {name: os.stat(os.path.join(dest, "blobs", "sha256", name)).st_mtime_ns for name in blob_files(dest)} == before


def test_docker_26_oci_archives_give_the_same_blobs(full_v2, bundles, trixie_engine, test_images, run, tmp_path):
    dest, _result = full_v2
    trixie_engine.remove(*test_images.round_trip)
    loaded = run("image_load", {"bundle": bundles["gzip"], "docker_host": trixie_engine.docker_host})
    assert not loaded["failed"], loaded["msg"]
    from_26 = str(tmp_path / "from-26")
    v2_save(run, test_images.round_trip, from_26, docker_host=trixie_engine.docker_host)
    ours, theirs = bundle.load_manifest(dest), assert_whole(from_26, run)
    assert [entry["layers"] for entry in theirs["images"]] == [entry["layers"] for entry in ours["images"]]
    assert [entry["config"] for entry in theirs["images"]] == [entry["config"] for entry in ours["images"]]
    # the same images against the 20.10 bundle as base: every layer is known by its name in the OCI archive
    differential = str(tmp_path / "from-26-diff")
    result = v2_save(run, test_images.round_trip, differential, docker_host=trixie_engine.docker_host, base=dest)
    assert [item["bytes"] for item in result["images"]] == [0, 0, 0]
    assert blob_files(differential) == [] and len(bundle.load_manifest(differential)["requires"]["blobs"]) == len(blob_files(dest))


def test_a_differential_bundle_carries_only_what_its_base_lacks(test_images, run, tmp_path):
    base = str(tmp_path / "base")
    v2_save(run, [test_images.refs["shared-a"]], base)
    dest = str(tmp_path / "diff")
    result = v2_save(run, [test_images.refs["shared-a"], test_images.refs["shared-b"]], dest, base=base)
    manifest = assert_whole(dest, run)
    base_manifest = bundle.load_manifest(base)
    shared_b = manifest["images"][1]
    assert manifest["requires"]["bundle"] == "sha256:" + hashlib.sha256(open(os.path.join(base, "bundle.json"), "rb").read()).hexdigest()
    new_blobs = [(shared_b["manifest"]["digest"], shared_b["manifest"]["size"]), (shared_b["config"]["digest"], shared_b["config"]["size"]),
                 (shared_b["layers"][-1]["digest"], shared_b["layers"][-1]["size"])]
    assert blob_files(dest) == sorted(digest[len("sha256:"):] for digest, _size in new_blobs)
    assert {blob["digest"] for blob in manifest["requires"]["blobs"]} == set(bundle.referenced_blobs(base_manifest))
    assert [item["bytes"] for item in result["images"]] == [0, sum(size for _digest, size in new_blobs)]
    again = run("image_save", {"images": [test_images.refs["shared-a"], test_images.refs["shared-b"]], "bundle": dest,
                               "format_version": 2, "pull": "never", "base": base})
    assert again["changed"] is False
    other = str(tmp_path / "other-base")
    v2_save(run, [test_images.refs["shared-b"]], other)
    refused = run("image_save", {"images": [test_images.refs["shared-b"]], "bundle": dest, "format_version": 2, "pull": "never", "base": other})
    assert refused["failed"] and "differential against a base whose bundle.json has sha256:" in refused["msg"], refused["msg"]
    assert "the base %s has sha256:" % other in refused["msg"]


ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def test_zstd_layers_are_tar_zstd_and_the_same_bytes_on_every_save(full_v2, test_images, run, tmp_path):
    """The opt-in for sites whose engines are all Docker >= 23: same images, same configs and diff_ids, other layer blobs."""
    dest, _result = full_v2
    first, second = str(tmp_path / "zstd-1"), str(tmp_path / "zstd-2")
    saved = v2_save(run, test_images.round_trip, first, compression="zstd")
    assert [item["action"] for item in saved["images"]] == ["saved"] * 3
    v2_save(run, test_images.round_trip, second, compression="zstd")
    ours, again, gzipped = assert_whole(first, run), assert_whole(second, run), bundle.load_manifest(dest)
    assert {layer["media_type"] for entry in ours["images"] for layer in entry["layers"]} == {ZSTD_LAYER}
    assert [entry["layers"] for entry in again["images"]] == [entry["layers"] for entry in ours["images"]]  # same digests
    assert [entry["manifest"] for entry in again["images"]] == [entry["manifest"] for entry in ours["images"]]
    assert blob_files(first) == blob_files(second)
    assert [[layer["diff_id"] for layer in entry["layers"]] for entry in ours["images"]] == \
        [[layer["diff_id"] for layer in entry["layers"]] for entry in gzipped["images"]]
    assert [entry["config"] for entry in ours["images"]] == [entry["config"] for entry in gzipped["images"]]
    layer = ours["images"][0]["layers"][-1]
    with open(bundle.blob_path(first, layer["digest"]), "rb") as handle:
        plain = zstandard.ZstdDecompressor().stream_reader(handle).read()
    assert "sha256:" + hashlib.sha256(plain).hexdigest() == layer["diff_id"] and len(plain) == layer["diff_size"]
    rerun = run("image_save", {"images": test_images.round_trip, "bundle": first, "format_version": 2, "pull": "never", "compression": "zstd"})
    assert rerun["changed"] is False and [item["bytes"] for item in rerun["images"]] == [0, 0, 0]


def test_a_zstd_differential_bundle_reuses_the_gzip_layers_of_its_base(test_images, run, tmp_path):
    base = str(tmp_path / "gzip-base")
    v2_save(run, [test_images.refs["shared-a"]], base)
    dest = str(tmp_path / "zstd-diff")
    result = v2_save(run, [test_images.refs["shared-a"], test_images.refs["shared-b"]], dest, base=base, compression="zstd")
    manifest = assert_whole(dest, run)
    base_layers = bundle.load_manifest(base)["images"][0]["layers"]
    shared_b = manifest["images"][1]
    # the base's layers stay gzip (held by the base, not stored again); shared-b's own layer is new: zstd
    assert shared_b["layers"][:-1] == base_layers[:-1] and {layer["media_type"] for layer in base_layers} == {GZIP_LAYER}
    assert shared_b["layers"][-1]["media_type"] == ZSTD_LAYER
    with open(bundle.blob_path(dest, shared_b["manifest"]["digest"]), "rb") as handle:
        assert [layer["mediaType"] for layer in json.load(handle)["layers"]] == [GZIP_LAYER] * (len(base_layers) - 1) + [ZSTD_LAYER]
    assert blob_files(dest) == sorted(digest[len("sha256:"):] for digest in (
        shared_b["manifest"]["digest"], shared_b["config"]["digest"], shared_b["layers"][-1]["digest"]))
    assert {blob["digest"] for blob in manifest["requires"]["blobs"]} == set(bundle.referenced_blobs(bundle.load_manifest(base)))
    assert [item["bytes"] for item in result["images"]] == [0, sum(size for _digest, size in bundle.carried_blobs(manifest).items())]


def test_formats_are_not_mixed_in_one_directory(test_images, bundles, run, tmp_path):
    v1 = str(tmp_path / "v1")
    shutil.copytree(bundles["gzip"], v1)
    refused = run("image_save", {"images": [test_images.refs["multi"]], "bundle": v1, "format_version": 2, "pull": "never"})
    assert refused["failed"] and "is format version 1 (one tarball per image); format_version 2 is not written over it" in refused["msg"]
    v2 = str(tmp_path / "v2")
    v2_save(run, [test_images.refs["multi"]], v2)
    refused = run("image_save", {"images": [test_images.refs["multi"]], "bundle": v2, "pull": "never"})
    assert refused["failed"] and "is format version 2 (content-addressed blobs); format_version 1 is not written over it" in refused["msg"]
    refused = run("image_save", {"images": [test_images.refs["multi"]], "bundle": v1, "pull": "never", "base": v2})
    assert refused["failed"] and "only format_version 2 can be" in refused["msg"]


def test_a_damaged_blob_is_refused_by_verify_and_a_missing_one_healed_by_the_next_save(full_v2, test_images, run, tmp_path):
    dest = str(tmp_path / "damaged")
    shutil.copytree(full_v2[0], dest)
    manifest = bundle.load_manifest(dest)
    layer = manifest["images"][0]["layers"][0]
    path = bundle.blob_path(dest, layer["digest"])
    with open(path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"swapped!")
    assert not run("bundle_info", {"bundle": dest})["failed"]  # same size: only verify reads it
    info = run("bundle_info", {"bundle": dest, "verify": True})
    assert info["failed"] and "%s has sha256 sha256:" % path in info["msg"] and "must hash to its name" in info["msg"], info["msg"]
    os.unlink(path)
    with open(os.path.join(dest, "blobs", "sha256", "0" * 64), "wb") as handle:
        handle.write(b"stray")
    info = run("bundle_info", {"bundle": dest})
    assert info["failed"] and "%s is missing" % path in info["msg"]
    healed = v2_save(run, test_images.round_trip, dest)
    assert healed["images"][0]["action"] == "saved" and "is missing" in healed["images"][0]["reason"]
    assert healed["removed"] == ["blobs/sha256/" + "0" * 64]
    assert_whole(dest, run)


# ---------------------------------------------------------------------------------------------
# kill -9 between any two writes, a full disk: the committed bundle.json lists only complete blobs

@pytest.fixture()
def moving(local_engine, tmp_path):
    """A tag that points to image A, then to B (both FROM scratch, 1 MiB of random bytes); all removed at the end."""
    marker = uuid.uuid4().hex[:10]
    made = []
    for name in ("a", "b"):
        context = tmp_path / ("ctx-" + name)
        context.mkdir()
        (context / "Dockerfile").write_text("FROM scratch\nCOPY data.bin /data.bin\nLABEL fi-a=%s-%s\n" % (marker, name))
        (context / "data.bin").write_bytes(os.urandom(1024 * 1024))
        image, _logs = local_engine.client.images.build(path=str(context), tag="%s/%s:%s" % (PREFIX, name, marker), rm=True, forcerm=True)
        made.append(image.id)
    repository = "%s/moving" % PREFIX

    def point_to(index):
        local_engine.client.api.tag(made[index], repository, marker, force=True)
        return made[index]

    yield "%s:%s" % (repository, marker), point_to
    local_engine.remove("%s:%s" % (repository, marker), "%s/a:%s" % (PREFIX, marker), "%s/b:%s" % (PREFIX, marker), *made)


@pytest.mark.parametrize("point", ["locked", "blob-written", "blob-linked", "index-renamed", "manifest-renamed", "sums-renamed"])
def test_kill_9_of_a_v2_save_leaves_a_whole_bundle(moving, tmp_path, run, point):
    reference, point_to = moving
    a_id = point_to(0)
    dest = str(tmp_path / "bundle")
    params = {"images": [reference], "bundle": dest, "format_version": 2, "pull": "never"}
    v2_save(run, [reference], dest)
    b_id = point_to(1)
    assert run_killed(params, point, tmp_path) == -signal.SIGKILL
    manifest = assert_whole(dest, run, sums_may_lag=point in ("index-renamed", "manifest-renamed"))
    if point not in ("manifest-renamed", "sums-renamed"):
        assert manifest["images"][0]["image_id"] == a_id, "the last good image must stay listed until the new one is committed"
    rerun = v2_save(run, [reference], dest)
    manifest = assert_whole(dest, run)
    assert manifest["images"][0]["image_id"] == b_id and rerun["changed"] is True
    assert blob_files(dest) == sorted(digest[len("sha256:"):] for digest in bundle.carried_blobs(manifest)), "an interrupted save left files"
    assert v2_save(run, [reference], dest)["changed"] is False


def test_a_full_disk_during_a_v2_save_keeps_the_old_bundle(moving, tmp_path, run):
    reference, point_to = moving
    mount_point = tmp_path / "fi-a-tmpfs"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "fi-a-tmpfs", str(mount_point)], check=True)
    try:
        dest = str(mount_point / "bundle")
        a_id = point_to(0)
        v2_save(run, [reference], dest, compression="none")
        point_to(1)
        stats = os.statvfs(str(mount_point))
        with open(str(mount_point / "filler"), "wb") as handle:
            handle.write(b"\0" * max(0, stats.f_bavail * stats.f_frsize - 256 * 1024))
        result = run("image_save", {"images": [reference], "bundle": dest, "format_version": 2, "pull": "never", "compression": "none"})
        assert result["failed"] is True and "Traceback" not in json.dumps(result)
        assert result["msg"].startswith("no space left in %s while writing the blobs of %s" % (os.path.join(dest, "blobs", "sha256"), reference)), result["msg"]
        assert assert_whole(dest, run)["images"][0]["image_id"] == a_id
        assert not [name for name in os.listdir(os.path.join(dest, "blobs", "sha256")) if name.startswith(".")]
        os.unlink(str(mount_point / "filler"))
        v2_save(run, [reference], dest, compression="none")
        assert_whole(dest, run)
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_the_bundle_playbook_passes_format_version_and_base(test_images, tmp_path):
    def play(dest, **extra):
        variables = dict({"bundle": dest, "bundle_images": [test_images.refs["shared-a"]], "bundle_registry_image": test_images.refs["shared-b"],
                          "bundle_pull": "never", "bundle_wheels": False, "bundle_format_version": 2}, **extra)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False")
        done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-e", "ansible_python_interpreter=%s" % sys.executable,
                               "-e", json.dumps(variables), "fleet.images.bundle"],
                              capture_output=True, text=True, env=env, check=False, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return bundle.load_manifest(dest)

    full = play(str(tmp_path / "full"))
    assert bundle.is_v2(full) and "requires" not in full and len(full["images"]) == 2
    differential = play(str(tmp_path / "diff"), bundle_base=str(tmp_path / "full"))
    assert len(differential["requires"]["blobs"]) == len(bundle.referenced_blobs(full)) and blob_files(str(tmp_path / "diff")) == []
