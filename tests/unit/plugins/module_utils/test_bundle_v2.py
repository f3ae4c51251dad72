"""Bundle format version 2 as read and checked by bundle.py (is_v2, image_blobs, blob_path, validation), without any engine."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(directory, data):
    path = os.path.join(directory, "blobs", "sha256", digest_of(data)[len("sha256:"):])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return {"digest": digest_of(data), "size": len(data)}


def v2_entry(directory, reference, layers, write=True):
    """An entry whose manifest, config and layers (bytes) are blobs in `directory` (when `write`)."""
    store = (lambda data: put_blob(directory, data)) if write else (lambda data: {"digest": digest_of(data), "size": len(data)})
    config = store(json.dumps({"ref": reference, "rootfs": {"diff_ids": [digest_of(b"plain " + layer) for layer in layers]}}).encode())
    described = []
    for layer in layers:
        described.append(dict(store(layer), media_type=GZIP_LAYER, diff_id=digest_of(b"plain " + layer), diff_size=len(layer) + 6))
    manifest = store(json.dumps({"schemaVersion": 2, "config": config, "layers": [layer["digest"] for layer in described]}).encode())
    return {"references": [reference], "tags": [reference], "image_id": config["digest"], "config_digest": config["digest"],
            "manifest_digest": manifest["digest"], "manifest": dict(manifest, media_type=bundle.OCI_MANIFEST_TYPE),
            "config": config, "layers": described}


def write_layout(directory):
    for name, data in ((bundle.OCI_LAYOUT_NAME, b'{"imageLayoutVersion": "1.0.0"}'), (bundle.INDEX_NAME, b'{"schemaVersion": 2, "manifests": []}')):
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(data)


@pytest.fixture()
def v2(tmp_path):
    directory = str(tmp_path)
    manifest = bundle.new_manifest(2)
    manifest["images"] = [v2_entry(directory, "base:1", [b"base layer"]), v2_entry(directory, "app:1", [b"base layer", b"app layer"])]
    write_layout(directory)
    bundle.write_manifest(directory, manifest)
    return directory, manifest


def test_is_v2():
    assert not bundle.is_v2(bundle.new_manifest())
    assert bundle.is_v2(bundle.new_manifest(2))


def test_image_blobs_lists_manifest_config_then_layers_in_order(v2):
    entry = v2[1]["images"][1]
    blobs = bundle.image_blobs(entry)
    assert blobs[0] == (entry["manifest"]["digest"], entry["manifest"]["size"])
    assert blobs[1] == (entry["config"]["digest"], entry["config"]["size"])
    assert blobs[2:] == [(digest_of(b"base layer"), 10), (digest_of(b"app layer"), 9)]
    with pytest.raises(BundleError, match="is a version 1 entry"):
        bundle.image_blobs({"references": ["x"], "file": "images/x.tar"})


def test_a_shared_layer_is_one_blob_and_sums_check_with_sha256sum(v2):
    directory, manifest = v2
    assert bundle.load_manifest(directory) == manifest
    blobs = sorted(os.listdir(os.path.join(directory, "blobs", "sha256")))
    assert len(blobs) == 2 + 2 + 2  # two manifests, two configs, two distinct layers (the base layer once)
    proc = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=directory, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = sorted(line.split(":")[0] for line in proc.stdout.splitlines())
    assert checked == sorted(["blobs/sha256/" + name for name in blobs] + ["index.json", "oci-layout"])


def test_render_is_deterministic_whatever_the_key_order(v2):
    manifest = v2[1]
    shuffled = json.loads(json.dumps(manifest))
    shuffled["images"] = [{key: (dict(reversed(list(value.items()))) if isinstance(value, dict) else value)
                           for key, value in reversed(list(entry.items()))} for entry in shuffled["images"]]
    for entry in shuffled["images"]:
        entry["layers"] = [dict(reversed(list(layer.items()))) for layer in entry["layers"]]
    assert bundle.render_manifest(shuffled) == bundle.render_manifest(manifest)
    assert '"media_type": "application/vnd.oci.image.layer.v1.tar+gzip",\n          "digest"' in bundle.render_manifest(manifest)


@pytest.mark.parametrize("digest", ["sha256:" + "A" * 64, "sha512:" + "a" * 64, "sha256:../../etc", "", None, "sha256:" + "a" * 63])
def test_blob_path_refuses_what_is_not_a_sha256_digest(tmp_path, digest):
    with pytest.raises(BundleError, match="is not a blob digest"):
        bundle.blob_path(str(tmp_path), digest)


def test_blob_path_refuses_symbolic_links(tmp_path):
    digest = "sha256:" + "c" * 64
    outside = tmp_path / "outside"
    outside.mkdir()
    inside = tmp_path / "bundle"
    inside.mkdir()
    assert bundle.blob_path(str(inside), digest) == str(inside / "blobs" / "sha256" / ("c" * 64))
    (inside / "blobs").symlink_to(outside)
    with pytest.raises(BundleError, match="leads outside the bundle"):
        bundle.blob_path(str(inside), digest)
    (inside / "blobs").unlink()
    (inside / "blobs" / "sha256").mkdir(parents=True)
    (inside / "blobs" / "sha256" / ("c" * 64)).symlink_to(inside / "blobs" / "sha256" / ("d" * 64))
    with pytest.raises(BundleError, match=r"blobs/sha256/c+ is a symbolic link; a blob must be a regular file"):
        bundle.blob_path(str(inside), digest)


def test_a_missing_blob_is_refused_unless_requires_lists_it(v2):
    directory, manifest = v2
    os.unlink(bundle.blob_path(directory, digest_of(b"app layer")))
    with pytest.raises(BundleError, match=r"is incomplete: 1 blob\(s\) its images reference are neither files in blobs/sha256/ nor listed in "
                                          r"requires \(sha256:%s\)" % hashlib.sha256(b"app layer").hexdigest()):
        bundle.load_manifest(directory)
    assert bundle.load_manifest(directory, check_blobs=False) == manifest  # bundle_info reports it itself
    assert bundle.missing_blobs(directory, manifest) == [(digest_of(b"app layer"), 9)]
    manifest["requires"] = {"bundle": digest_of(b"base bundle.json"), "blobs": [{"digest": digest_of(b"app layer"), "size": 9}]}
    bundle.write_manifest(directory, manifest)
    assert bundle.load_manifest(directory)["requires"] == manifest["requires"]
    with open(os.path.join(directory, "SHA256SUMS")) as handle:
        assert hashlib.sha256(b"app layer").hexdigest() not in handle.read()  # SHA256SUMS lists only carried blobs


def test_a_blob_replaced_by_a_directory_or_fifo_is_missing(v2):
    directory, manifest = v2
    path = bundle.blob_path(directory, digest_of(b"base layer"))
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(BundleError, match="is incomplete"):
        bundle.load_manifest(directory)


LAYER = {"media_type": GZIP_LAYER, "digest": "sha256:" + "1" * 64, "size": 1, "diff_id": "sha256:" + "2" * 64, "diff_size": 2}


@pytest.mark.parametrize("change, message", [
    (lambda entry: entry["manifest"].update(media_type="application/vnd.docker.distribution.manifest.v2+json"), "manifest media_type"),
    (lambda entry: entry["layers"][0].update(media_type="application/vnd.oci.image.layer.v1.tar+xz"), r"layers\[0\] media_type"),
    (lambda entry: entry["layers"][0].update(digest="sha256:" + "Z" * 64), r"layers\[0\] digest must look like"),
    (lambda entry: entry["layers"][0].update(diff_id="abc"), r"layers\[0\] diff_id must look like"),
    (lambda entry: entry["layers"][0].update(diff_size=-1), r"layers\[0\] diff_size must be a whole number"),
    (lambda entry: entry["config"].update(size="12"), "config size must be a whole number"),
    (lambda entry: entry.pop("config"), "config must be an object"),
    (lambda entry: entry.update(layers={}), "layers must be a list"),
    (lambda entry: entry.update(manifest_digest="sha256:" + "9" * 64), "manifest_digest sha256:9+ is not the manifest's digest"),
    (lambda entry: entry.update(image_id="nope"), "image_id must look like"),
    (lambda entry: entry["layers"].append(dict(LAYER, diff_id=entry["layers"][0]["diff_id"])), "is stored twice, as blobs"),
    (lambda entry: entry["layers"].append(dict(LAYER, digest=entry["config"]["digest"])), "is recorded with 1 bytes here and"),
])
def test_bad_v2_entries_are_named(v2, change, message):
    directory, manifest = v2
    change(manifest["images"][1])
    with open(os.path.join(directory, "bundle.json"), "w") as handle:
        json.dump(manifest, handle)
    with pytest.raises(BundleError, match=message) as error:
        bundle.load_manifest(directory)
    assert r"images[1] (app:1)" in str(error.value)


@pytest.mark.parametrize("requires, message", [
    ([], "must be an object whose bundle is sha256"),
    ({"bundle": "abc", "blobs": []}, "must be an object whose bundle is sha256"),
    ({"bundle": "sha256:" + "0" * 64, "blobs": {}}, "blobs must be a list"),
    ({"bundle": "sha256:" + "0" * 64, "blobs": [{"digest": "sha256:" + "5" * 64, "size": 3}]}, "is not referenced by any image"),
    ({"bundle": "sha256:" + "0" * 64, "blobs": [{"digest": digest_of(b"app layer"), "size": 8}]}, "has 8 bytes, the images record 9"),
])
def test_bad_requires_is_named(v2, requires, message):
    directory, manifest = v2
    manifest["requires"] = requires
    with pytest.raises(BundleError, match=message):
        bundle.validate_manifest(manifest, "bundle.json", directory)


def test_layer_compression_by_media_type():
    assert [bundle.layer_compression(media_type) for media_type in bundle.LAYER_MEDIA_TYPES] == ["none", "gzip", "zstd"]
    with pytest.raises(BundleError, match="is not one of"):
        bundle.layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip")


def test_foreign_sums_lines_survive_and_ours_are_remade(v2):
    directory, manifest = v2
    other = "%s  README.txt" % hashlib.sha256(b"x").hexdigest()
    with open(os.path.join(directory, "SHA256SUMS"), "a") as handle:
        handle.write(other + "\n" + "0" * 64 + "  blobs/sha256/" + "0" * 64 + "\n" + "1" * 64 + "  index.json\n")
    bundle.write_manifest(directory, manifest)
    with open(os.path.join(directory, "SHA256SUMS")) as handle:
        lines = handle.read().splitlines()
    assert lines[0] == other and len(lines) == 1 + 6 + 2
    assert "0" * 64 not in "".join(lines) and "1" * 64 not in "".join(lines)


def test_bundle_info_reads_v2_with_the_common_item_shape(v2):
    from ansible_collections.fleet.images.plugins.module_utils import bundle_contents

    directory, manifest = v2
    listed = bundle_contents.read_bundle(directory, [], verify=False)
    assert [(item["reference"], item["action"]) for item in listed["images"]] == [("base:1", "listed"), ("app:1", "listed")]
    app = manifest["images"][1]
    assert listed["images"][1]["bytes"] == sum(size for _digest, size in bundle.image_blobs(app))
    assert listed["images_size"] == sum(bundle.carried_blobs(manifest).values()) and listed["unlisted_blobs"] == []
    verified = bundle_contents.read_bundle(directory, ["app:1"], verify=True)
    assert [item["action"] for item in verified["images"]] == ["verified"] and len(verified["verified"]) == 2 + 2
    with open(os.path.join(directory, "blobs", "sha256", "f" * 64), "wb") as handle:
        handle.write(b"stray")
    path = bundle.blob_path(directory, digest_of(b"app layer"))
    with open(path, "wb") as handle:
        handle.write(b"APP LAYER")  # same size, other bytes
    assert bundle_contents.read_bundle(directory, [], verify=False)["unlisted_blobs"] == ["blobs/sha256/" + "f" * 64]
    with pytest.raises(BundleError, match="%s has sha256 sha256:[0-9a-f]{64}: a blob's content must hash to its name" % path):
        bundle_contents.read_bundle(directory, [], verify=True)
