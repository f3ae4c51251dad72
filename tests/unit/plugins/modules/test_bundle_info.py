"""bundle_info reads a bundle and refuses a damaged one, naming each bad file; no engine needed."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.fleet.images.plugins.module_utils import bundle
from ansible_collections.fleet.images.plugins.module_utils import bundle_contents
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".build", "collections")


def make_bundle(directory, images, wheels=()):
    """A bundle written through bundle.py: `images` maps a reference to its tarball's bytes."""
    manifest = bundle.new_manifest()
    os.makedirs(os.path.join(directory, bundle.IMAGES_DIR), exist_ok=True)
    for index, (reference, content) in enumerate(images.items()):
        name = bundle.tarball_name(reference, "none")
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(content)
        manifest["images"].append({
            "references": [reference], "tags": [image_ref.normalize(reference)], "image_id": "sha256:%064x" % (index + 1),
            "file": name, "size": len(content), "sha256": hashlib.sha256(content).hexdigest(), "compression": "none",
        })
    bundle.write_manifest(directory, manifest)
    if wheels:
        os.makedirs(os.path.join(directory, "wheels"))
        for wheel in wheels:
            with open(os.path.join(directory, "wheels", wheel), "wb") as handle:
                handle.write(b"PK" + wheel.encode())
        bundle_contents.record_wheels(directory)
        manifest = bundle.load_manifest(directory)
    return manifest


@pytest.fixture()
def two_images(tmp_path):
    manifest = make_bundle(str(tmp_path), {"nginx": b"a" * 1000, "registry.example.com/team/app:2.1": b"b" * 3000},
                           wheels=["docker-7.1.0-py3-none-any.whl", "pip-24.0-py3-none-any.whl"])
    return str(tmp_path), manifest


def test_reads_every_image_with_sizes_wheels_and_references(two_images):
    directory, manifest = two_images
    result = bundle_contents.read_bundle(directory, [], verify=True)
    assert [image["file"] for image in result["images"]] == [entry["file"] for entry in manifest["images"]]
    assert result["images_size"] == 4000
    assert result["total_size"] == 4000 + sum(len(b"PK" + name.encode()) for name in ("docker-7.1.0-py3-none-any.whl", "pip-24.0-py3-none-any.whl"))
    assert [wheel["name"] for wheel in result["wheels"]] == ["docker-7.1.0-py3-none-any.whl", "pip-24.0-py3-none-any.whl"]
    assert [wheel["file"] for wheel in result["wheels"]] == ["wheels/docker-7.1.0-py3-none-any.whl", "wheels/pip-24.0-py3-none-any.whl"]
    assert result["wheels_listed"] is True and result["unlisted_wheels"] == []
    # both the recorded and the engine's form of a reference lead to the tarball
    assert result["references"]["nginx"] == result["references"]["nginx:latest"] == manifest["images"][0]["file"]
    assert result["verified"] == result["files"] + [wheel["file"] for wheel in result["wheels"]]
    assert result["sha256sums"] == bundle.sums_text(manifest)
    assert result["images"][1]["file_path"] == os.path.join(directory, manifest["images"][1]["file"])


def test_selects_images_by_reference(two_images):
    directory, manifest = two_images
    result = bundle_contents.read_bundle(directory, ["registry.example.com/team/app:2.1"], verify=False)
    assert result["files"] == [manifest["images"][1]["file"]]
    assert result["verified"] == []
    assert result["images_size"] == 3000


def test_unknown_reference_lists_what_the_bundle_holds(two_images):
    directory = two_images[0]
    with pytest.raises(bundle.BundleError, match=r"has no image redis:7; it holds: nginx, registry.example.com/team/app:2.1"):
        bundle_contents.read_bundle(directory, ["redis:7"], verify=False)


def test_flipped_byte_names_the_file_and_both_checksums(two_images):
    directory, manifest = two_images
    entry = manifest["images"][1]
    path = os.path.join(directory, entry["file"])
    with open(path, "r+b") as handle:
        handle.seek(1500)
        handle.write(b"X")
    actual = bundle.sha256_file(path)
    # without verify, a same-size corruption is not seen: only presence and size are checked
    bundle_contents.read_bundle(directory, [], verify=False)
    with pytest.raises(bundle.BundleError) as caught:
        bundle_contents.read_bundle(directory, [], verify=True)
    message = str(caught.value)
    assert path in message and actual in message and entry["sha256"] in message
    assert manifest["images"][0]["file"] not in message


def test_truncated_and_missing_files_are_all_reported(two_images):
    directory, manifest = two_images
    first, second = (os.path.join(directory, entry["file"]) for entry in manifest["images"])
    with open(first, "r+b") as handle:
        handle.truncate(10)
    os.unlink(second)
    with pytest.raises(bundle.BundleError) as caught:
        bundle_contents.read_bundle(directory, [], verify=False)
    message = str(caught.value)
    assert "%s has 10 bytes, bundle.json records 1000" % first in message
    assert "%s is missing" % second in message


def test_not_a_bundle(tmp_path):
    with pytest.raises(bundle.BundleError, match="bundle.json does not exist"):
        bundle_contents.read_bundle(str(tmp_path), [], verify=False)


def test_manifest_pointing_outside_the_bundle_is_refused(two_images):
    directory, manifest = two_images
    manifest["images"][0]["file"] = "../../etc/passwd"
    with open(os.path.join(directory, "bundle.json"), "w") as handle:
        json.dump(manifest, handle)
    with pytest.raises(bundle.BundleError, match="outside the bundle"):
        bundle_contents.read_bundle(directory, [], verify=False)


def run_module(params):
    args = os.path.join(COLLECTIONS_ROOT, "args-bundle_info-unit-%d.json" % os.getpid())
    with open(args, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": params}, handle)
    try:
        proc = subprocess.run([sys.executable, "-m", "ansible_collections.fleet.images.plugins.modules.bundle_info", args],
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT), check=False)
    finally:
        os.unlink(args)
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_module_reports_unchanged_and_fails_naming_the_file(two_images):
    directory, manifest = two_images
    rc, result = run_module({"path": directory, "verify": True})
    assert rc == 0 and result["changed"] is False and len(result["images"]) == 2
    os.unlink(os.path.join(directory, manifest["images"][0]["file"]))
    rc, result = run_module({"path": directory})
    assert rc == 1 and result["failed"] is True
    assert manifest["images"][0]["file"] in result["msg"]


def test_sha256sums_disagreeing_with_the_manifest_is_reported(two_images):
    directory, manifest = two_images
    entry = manifest["images"][0]
    with open(os.path.join(directory, "SHA256SUMS"), "w") as handle:
        handle.write("%s  %s\n" % ("0" * 64, entry["file"]))
    with pytest.raises(bundle.BundleError, match="disagrees with itself about %s" % entry["file"]):
        bundle_contents.read_bundle(directory, [], verify=False)


# --- wheels -------------------------------------------------------------------------------------

def test_wheels_are_listed_in_the_manifest_and_checked_by_sha256sum(two_images):
    directory, manifest = two_images
    assert [wheel["file"] for wheel in manifest["wheels"]] == ["wheels/docker-7.1.0-py3-none-any.whl", "wheels/pip-24.0-py3-none-any.whl"]
    for wheel in manifest["wheels"]:
        with open(os.path.join(directory, wheel["file"]), "rb") as handle:
            data = handle.read()
        assert wheel["sha256"] == hashlib.sha256(data).hexdigest() and wheel["size"] == len(data)
    proc = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=directory, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "wheels/pip-24.0-py3-none-any.whl: OK" in proc.stdout, proc.stdout + proc.stderr
    # recording again changes nothing
    assert bundle_contents.record_wheels(directory)[0] is False


def test_a_tampered_wheel_is_named_with_both_checksums(two_images):
    directory, manifest = two_images
    wheel = manifest["wheels"][0]
    path = os.path.join(directory, wheel["file"])
    with open(path, "r+b") as handle:
        handle.write(b"XX")
    actual = bundle.sha256_file(path)
    with pytest.raises(bundle.BundleError) as caught:
        bundle_contents.read_bundle(directory, [], verify=True)
    assert "wheel %s has sha256 %s, bundle.json and SHA256SUMS expect %s" % (path, actual, wheel["sha256"]) in str(caught.value)
    proc = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=directory, capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "%s: FAILED" % wheel["file"] in proc.stdout


def test_a_missing_or_resized_wheel_fails_even_without_verify(two_images):
    directory, manifest = two_images
    os.unlink(os.path.join(directory, manifest["wheels"][1]["file"]))
    with open(os.path.join(directory, manifest["wheels"][0]["file"]), "ab") as handle:
        handle.write(b"more")
    with pytest.raises(bundle.BundleError) as caught:
        bundle_contents.read_bundle(directory, [], verify=False)
    assert "pip-24.0-py3-none-any.whl is missing" in str(caught.value)
    assert "docker-7.1.0-py3-none-any.whl has" in str(caught.value)


def test_an_old_bundle_has_its_wheels_unlisted(tmp_path):
    directory = str(tmp_path)
    make_bundle(directory, {"nginx": b"a" * 10})
    os.makedirs(os.path.join(directory, "wheels"))
    with open(os.path.join(directory, "wheels", "pip-24.0-py3-none-any.whl"), "wb") as handle:
        handle.write(b"PK")
    result = bundle_contents.read_bundle(directory, [], verify=True)
    assert result["wheels_listed"] is False and result["wheels"] == []
    assert result["unlisted_wheels"] == ["wheels/pip-24.0-py3-none-any.whl"]
