"""The bundle manifest, safe naming, SHA256SUMS and atomic writes, without any engine."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import pytest

from ansible_collections.fleet.images.plugins.module_utils import atomic_file, bundle
from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.bundle import BundleError

SAFE_FILE = re.compile(r"^images/[A-Za-z0-9][A-Za-z0-9._-]*-[0-9a-f]{12}\.tar(\.gz|\.zst)?$")
DIGEST = "sha256:" + "ab" * 32


def entry_for(directory, reference, content, compression="none", **extra):
    name = bundle.tarball_name(reference, compression)
    path = os.path.join(directory, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content)
    entry = {
        "references": [reference], "tags": [image_ref.normalize(reference)] if image_ref.is_tag(reference) else [],
        "image_id": "sha256:" + hashlib.sha256(reference.encode()).hexdigest(), "file": name, "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(), "compression": compression,
    }
    entry.update(extra)
    return entry


@pytest.fixture()
def written(tmp_path):
    directory = str(tmp_path)
    manifest = bundle.new_manifest()
    manifest["images"] = [
        entry_for(directory, "nginx:1.25", b"n" * 2048),
        entry_for(directory, "registry.example.com:5000/team/app@" + DIGEST, b"a" * 4096, "zstd"),
    ]
    bundle.write_manifest(directory, manifest)
    return directory, manifest


# --- references and names -------------------------------------------------------------------

@pytest.mark.parametrize("reference", [
    "nginx", "nginx:1.25", "a/b:c", "a_b:c", "../../etc/passwd", "..", "-rf", ".hidden:1",
    "registry.example.com:5000/team/app@" + DIGEST, "x" * 300 + ":1", "app:tag/../../x", "ünïcode/app:1",
])
@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_tarball_names_are_safe(reference, compression):
    name = bundle.tarball_name(reference, compression)
    assert SAFE_FILE.match(name), name
    assert len(os.path.basename(name)) <= 130
    assert name.endswith({"none": ".tar", "gzip": ".tar.gz", "zstd": ".tar.zst"}[compression])


def test_tarball_names_unique_but_stable():
    assert bundle.tarball_name("a/b:c", "zstd") != bundle.tarball_name("a_b:c", "zstd")
    assert bundle.tarball_name("nginx", "gzip") == bundle.tarball_name("nginx:latest", "gzip")
    assert bundle.tarball_name("docker.io/library/nginx:1.25", "none") == bundle.tarball_name("nginx:1.25", "none")
    assert bundle.tarball_name("nginx:1.25", "none").startswith("images/nginx_1.25-")


# --- path safety ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "../outside.tar", "images/../../outside.tar", "/etc/passwd", "images//x.tar", "./images/x.tar",
    "images\\x.tar", "images/x\x00.tar", "", "..",
])
def test_resolve_file_refuses_names_leaving_the_bundle(tmp_path, name):
    with pytest.raises(BundleError, match="outside the bundle|non-empty string") as error:
        bundle.resolve_file(str(tmp_path), name, owner="nginx:1.25")
    assert str(tmp_path) in str(error.value)


def test_resolve_file_refuses_a_symlink_out_of_the_bundle(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    inside = tmp_path / "bundle"
    (inside / "images").mkdir(parents=True)
    (inside / "images" / "link.tar").symlink_to(outside / "secret.tar")
    with pytest.raises(BundleError, match="leads outside the bundle"):
        bundle.resolve_file(str(inside), "images/link.tar")
    assert bundle.resolve_file(str(inside), "images/x.tar") == str(inside / "images" / "x.tar")


# --- manifest -----------------------------------------------------------------------------

def test_round_trip_and_sums_are_what_sha256sum_checks(written):
    directory, manifest = written
    assert bundle.load_manifest(directory) == manifest
    with open(os.path.join(directory, "SHA256SUMS")) as handle:
        sums = handle.read()
    assert sums == bundle.sums_text(manifest)
    proc = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=directory, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": OK") == 2


def test_write_is_idempotent_and_leaves_no_temp_file(written):
    directory, manifest = written
    before = {name: os.stat(os.path.join(directory, name)).st_mtime_ns for name in ("bundle.json", "SHA256SUMS")}
    assert bundle.write_manifest(directory, json.loads(json.dumps(manifest))) is False
    assert {name: os.stat(os.path.join(directory, name)).st_mtime_ns for name in before} == before
    assert sorted(name for name in os.listdir(directory) if name.startswith(".")) == []


def test_unknown_fields_survive_a_rewrite(written):
    directory, manifest = written
    path = os.path.join(directory, "bundle.json")
    with open(path) as handle:
        document = json.load(handle)
    document["signed_by"] = "ops@example.com"
    document["images"][0]["sbom"] = {"format": "spdx"}
    with open(path, "w") as handle:
        json.dump(document, handle)
    loaded = bundle.load_manifest(directory)
    loaded["images"][1]["references"].append("app:extra")
    bundle.write_manifest(directory, loaded)
    again = bundle.load_manifest(directory)
    assert again["signed_by"] == "ops@example.com"
    assert again["images"][0]["sbom"] == {"format": "spdx"}
    assert again["images"][1]["references"][-1] == "app:extra"


def test_render_is_deterministic_and_starts_with_format_and_version(written):
    manifest = written[1]
    shuffled = dict(reversed(list(manifest.items())))
    assert bundle.render_manifest(shuffled) == bundle.render_manifest(manifest)
    assert bundle.render_manifest(manifest).startswith('{\n  "format": "fleet.images/bundle",\n  "version": 1,')


def test_newer_version_is_refused_naming_both_versions(written):
    directory, manifest = written
    manifest["version"] = 3
    with open(os.path.join(directory, "bundle.json"), "w") as handle:
        json.dump(manifest, handle)
    with pytest.raises(BundleError, match=r"is bundle format version 3, but this fleet.images reads version 2 and older.*Upgrade"):
        bundle.load_manifest(directory)


@pytest.mark.parametrize("text, message", [
    ("{not json", r"bundle.json is not valid JSON \(Expecting property name enclosed in double quotes: line 1 column 2"),
    ("", "is not valid JSON"),
    ("[]", "expected a JSON object, got list"),
    ('{"format": "other", "version": 1, "images": []}', "format is 'other', expected 'fleet.images/bundle'"),
    ('{"format": "fleet.images/bundle", "version": "1", "images": []}', "version must be a whole number"),
    ('{"format": "fleet.images/bundle", "version": 1, "images": {}}', "images must be a list"),
])
def test_damaged_manifests_are_explained(tmp_path, text, message):
    (tmp_path / "bundle.json").write_text(text)
    with pytest.raises(BundleError, match=message) as error:
        bundle.load_manifest(str(tmp_path))
    assert str(tmp_path / "bundle.json") in str(error.value)


def test_a_byte_order_mark_is_not_damage(written):
    directory, manifest = written
    path = os.path.join(directory, "bundle.json")
    with open(path, "rb") as handle:
        text = handle.read()
    with open(path, "wb") as handle:
        handle.write(b"\xef\xbb\xbf" + text)  # what some Windows editors save
    assert bundle.load_manifest(directory) == manifest


@pytest.mark.parametrize("depth", [10000, 200000])
def test_deeply_nested_json_is_a_clear_error(tmp_path, depth):
    (tmp_path / "bundle.json").write_text("[" * depth + "]" * depth)
    with pytest.raises(BundleError) as error:
        bundle.load_manifest(str(tmp_path))
    assert str(error.value) == ("%s nests its JSON too deeply to be read: it is not a bundle manifest written by image_save; "
                                "copy bundle.json again from the original bundle" % (tmp_path / "bundle.json"))


def test_a_tarball_is_read_only_from_a_regular_file(written, tmp_path):
    directory, manifest = written
    entry = manifest["images"][0]
    path = os.path.join(directory, entry["file"])
    os.rename(path, path + ".real")
    os.symlink(path + ".real", path)
    with pytest.raises(BundleError, match="is a symbolic link; refusing to follow it"):
        bundle.verify_file(directory, entry)
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(BundleError, match=r"is not a regular file \(a FIFO\); refusing to read it"):
        bundle.verify_file(directory, entry)  # and does not hang waiting for a writer
    os.unlink(path)
    os.rename(path + ".real", path)
    path_checked, handle = bundle.open_entry_file(directory, entry)
    with handle:
        assert path_checked == path and handle.tell() == 0 and handle.read() == b"n" * 2048


def test_binary_manifest_is_not_json(tmp_path):
    (tmp_path / "bundle.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BundleError, match="is not valid JSON \\(it is not UTF-8"):
        bundle.load_manifest(str(tmp_path))


def test_missing_manifest_and_missing_directory(tmp_path):
    with pytest.raises(BundleError, match="bundle.json does not exist: .* is not a bundle written by fleet.images.image_save"):
        bundle.load_manifest(str(tmp_path))
    assert bundle.load_manifest(str(tmp_path), missing_ok=True) == bundle.new_manifest()
    with pytest.raises(BundleError, match="does not exist or is not a directory"):
        bundle.load_manifest(str(tmp_path / "nope"))
    assert bundle.load_manifest(str(tmp_path / "nope"), missing_ok=True)["images"] == []


@pytest.mark.parametrize("field, value, message", [
    ("sha256", "ABC", "sha256 must be 64 lowercase hex digits"),
    ("sha256", "A" * 64, "sha256 must be 64 lowercase hex digits"),
    ("size", -1, "size must be a whole number of bytes"),
    ("size", True, "size must be a whole number of bytes"),
    ("size", "12", "size must be a whole number of bytes"),
    ("compression", "xz", "compression 'xz' is not one of none, gzip, zstd"),
    ("references", [], "references must be a non-empty list of strings"),
    ("tags", "nginx", "tags must be a list of strings"),
    ("image_id", "abc", "image_id must look like sha256:<64 hex digits>"),
    ("file", "../x.tar", "outside the bundle"),
    ("file", None, "file must be a non-empty string"),
])
def test_bad_entries_are_named(written, field, value, message):
    directory, manifest = written
    manifest["images"][1][field] = value
    with open(os.path.join(directory, "bundle.json"), "w") as handle:
        json.dump(manifest, handle)
    with pytest.raises(BundleError, match=message) as error:
        bundle.load_manifest(directory)
    assert "images[1]" in str(error.value) or "outside the bundle" in str(error.value)


def test_the_same_file_twice_is_refused(written):
    directory, manifest = written
    manifest["images"][1]["file"] = manifest["images"][0]["file"]
    with pytest.raises(BundleError, match="is listed twice"):
        bundle.validate_manifest(manifest, "bundle.json")


def test_select_entries_by_any_recorded_or_normalized_name(written):
    manifest = written[1]
    assert bundle.select_entries(manifest, [], "b") == manifest["images"]
    assert bundle.select_entries(manifest, ["docker.io/library/nginx:1.25"], "b") == [manifest["images"][0]]
    both = bundle.select_entries(manifest, ["registry.example.com:5000/team/app@" + DIGEST, "nginx:1.25", "nginx:1.25"], "b")
    assert both == manifest["images"]   # manifest order, no duplicates
    with pytest.raises(BundleError, match=r"bundle b has no image redis:7, nginx:1.24; it holds: nginx:1.25, registry.example.com"):
        bundle.select_entries(manifest, ["redis:7", "nginx:1.24"], "b")


# --- SHA256SUMS -----------------------------------------------------------------------------

def test_foreign_sums_lines_are_kept_and_image_and_wheel_lines_replaced(written):
    directory, manifest = written
    wheel = os.path.join(directory, "wheels", "docker-7.1.0-py3-none-any.whl")
    os.makedirs(os.path.dirname(wheel))
    with open(wheel, "wb") as handle:
        handle.write(b"PK wheel")
    other_line = "%s  README.txt" % hashlib.sha256(b"read me").hexdigest()
    with open(os.path.join(directory, "SHA256SUMS"), "a") as handle:
        # a wheel line bundle.json does not list is not kept: SHA256SUMS lists only what bundle.json lists
        handle.write(other_line + "\n" + "1" * 64 + "  wheels/unlisted.whl\n" + "0" * 64 + "  images/stale.tar\n")
    manifest["images"].pop(0)
    manifest["wheels"] = [{"file": "wheels/docker-7.1.0-py3-none-any.whl", "size": 8, "sha256": hashlib.sha256(b"PK wheel").hexdigest()}]
    bundle.write_manifest(directory, manifest)
    with open(os.path.join(directory, "SHA256SUMS")) as handle:
        lines = handle.read().splitlines()
    assert lines == [other_line, "%s  %s" % (manifest["images"][0]["sha256"], manifest["images"][0]["file"]),
                     "%s  wheels/docker-7.1.0-py3-none-any.whl" % hashlib.sha256(b"PK wheel").hexdigest()]
    assert bundle.load_manifest(directory)["wheels"] == manifest["wheels"]


@pytest.mark.parametrize("wheels, message", [
    ("x", "wheels must be a list"),
    (["x"], "wheels\\[0\\]: expected an object"),
    ([{"file": "../x.whl", "size": 1, "sha256": "0" * 64}], "file must be wheels/<name>.whl"),
    ([{"file": "wheels/a/b.whl", "size": 1, "sha256": "0" * 64}], "file must be wheels/<name>.whl"),
    ([{"file": "wheels/x.tar", "size": 1, "sha256": "0" * 64}], "file must be wheels/<name>.whl"),
    ([{"file": "wheels/x.whl", "size": True, "sha256": "0" * 64}], "size must be a whole number"),
    ([{"file": "wheels/x.whl", "size": 1, "sha256": "A" * 64}], "sha256 must be 64 lowercase hex"),
    ([{"file": "wheels/x.whl", "size": 1, "sha256": "0" * 64}] * 2, "listed twice"),
])
def test_bad_wheel_lists_are_named(written, wheels, message):
    directory, manifest = written
    manifest["wheels"] = wheels
    with pytest.raises(BundleError, match=message):
        bundle.validate_manifest(manifest, "bundle.json", directory)


def test_parse_sums_reads_text_and_binary_mode_lines():
    text = "%s  images/a.tar\n%s *images/b.tar.zst\nnot a line\n" % ("a" * 64, "B" * 64)
    assert bundle.parse_sums(text) == {"images/a.tar": "a" * 64, "images/b.tar.zst": "b" * 64}


def test_sums_that_disagree_with_the_manifest_are_reported(written):
    directory, manifest = written
    entry = manifest["images"][0]
    bundle.check_sums_agree(directory, entry)
    with open(os.path.join(directory, "SHA256SUMS"), "w") as handle:
        handle.write("%s  %s\n" % ("c" * 64, entry["file"]))
    with pytest.raises(BundleError, match="bundle.json records sha256 %s, SHA256SUMS lists %s" % (entry["sha256"], "c" * 64)):
        bundle.check_sums_agree(directory, entry)


# --- verifying a tarball --------------------------------------------------------------------

def test_verify_file_accepts_a_good_file(written):
    directory, manifest = written
    entry = manifest["images"][0]
    assert bundle.verify_file(directory, entry) == os.path.join(directory, entry["file"])


def test_verify_file_flipped_byte_names_file_expected_and_actual(written):
    directory, manifest = written
    entry = manifest["images"][0]
    path = os.path.join(directory, entry["file"])
    with open(path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"X")
    actual = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with pytest.raises(BundleError) as error:
        bundle.verify_file(directory, entry)
    assert str(error.value) == "%s failed its checksum: expected sha256 %s, actual %s" % (path, entry["sha256"], actual)
    assert bundle.verify_file(directory, entry, verify=False) == path   # same size: only verify sees it


def test_verify_file_truncated_and_missing(written):
    directory, manifest = written
    entry = manifest["images"][0]
    path = os.path.join(directory, entry["file"])
    with open(path, "r+b") as handle:
        handle.truncate(1000)
    actual = hashlib.sha256(b"n" * 1000).hexdigest()
    with pytest.raises(BundleError, match="%s is truncated: it has 1000 bytes, bundle.json records 2048; expected sha256 %s, actual %s"
                       % (re.escape(path), entry["sha256"], actual)):
        bundle.verify_file(directory, entry)
    os.unlink(path)
    with pytest.raises(BundleError, match="%s is missing: bundle.json expects it \\(2048 bytes, sha256 %s\\) for nginx:1.25; actual: no file"
                       % (re.escape(path), entry["sha256"])):
        bundle.verify_file(directory, entry)


def test_atomic_write_replaces_whole_files_only(tmp_path):
    path = str(tmp_path / "f.json")
    assert atomic_file.atomic_write(path, b"one") is True
    assert atomic_file.atomic_write(path, b"one") is False
    assert atomic_file.atomic_write(path, b"two") is True
    assert open(path, "rb").read() == b"two"
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert os.listdir(str(tmp_path)) == ["f.json"]


def test_lock_is_exclusive(tmp_path):
    import fcntl
    with bundle.bundle_lock(str(tmp_path)):
        fd = os.open(str(tmp_path), os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
