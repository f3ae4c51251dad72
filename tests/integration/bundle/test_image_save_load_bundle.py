"""How image_save keeps a bundle in step with what is asked: aliases, compression changes, pruning, repairs."""

from __future__ import annotations

import json
import os
import subprocess
from module_runner import with_action


def manifest_of(dest):
    with open(os.path.join(dest, "bundle.json")) as handle:
        return json.load(handle)


def sha256sum_ok(dest):
    proc = subprocess.run(["sha256sum", "--strict", "-c", "SHA256SUMS"], cwd=dest, capture_output=True, text=True, check=False)
    return proc.returncode == 0, proc.stdout + proc.stderr


def test_two_references_to_one_image_share_one_tarball(local_engine, test_images, run, tmp_path):
    alias = "itest-bundle/alias:%s" % test_images.marker
    local_engine.client.api.tag(test_images.refs["multi"], "itest-bundle/alias", test_images.marker)
    try:
        dest = str(tmp_path / "bundle")
        result = run("image_save", {"images": [test_images.refs["multi"], alias], "dest": dest, "pull": "never"})
        assert not result["failed"], result["msg"]
        assert len(result["images"]) == 1 and result["images"][0]["references"] == [test_images.refs["multi"], alias]
        entry = manifest_of(dest)["images"][0]
        assert entry["tags"] == [test_images.refs["multi"], alias]
        assert len(os.listdir(os.path.join(dest, "images"))) == 1

        # the alias now names another image: it moves to a new entry of its own
        local_engine.client.api.tag(test_images.refs["shared-a"], "itest-bundle/alias", test_images.marker, force=True)
        moved = run("image_save", {"images": [test_images.refs["multi"], alias], "dest": dest, "pull": "never"})
        assert not moved["failed"], moved["msg"]
        assert moved["changed"] is True
        assert [image["action"] for image in moved["images"]] == ["unchanged", "saved"]
        entries = manifest_of(dest)["images"]
        assert [entry["references"] for entry in entries] == [[test_images.refs["multi"]], [alias]]
        assert [entry["image_id"] for entry in entries] == [test_images.ids["multi"], test_images.ids["shared-a"]]
        assert sha256sum_ok(dest)[0]
    finally:
        local_engine.remove(alias)


def test_compression_change_rewrites_and_removes_the_old_file(test_images, run, tmp_path):
    dest = str(tmp_path / "bundle")
    params = {"images": [test_images.refs["multi"]], "dest": dest, "pull": "never"}
    first = run("image_save", dict(params, compression="gzip"))
    old_file = first["images"][0]["file"]
    assert old_file.endswith(".tar.gz")

    level_only = run("image_save", dict(params, compression="gzip", compression_level=9))
    assert level_only["changed"] is False, "a new level alone must not rewrite"

    changed = run("image_save", dict(params, compression="zstd", compression_level=19), diff=True)
    assert not changed["failed"], changed["msg"]
    assert changed["changed"] is True
    assert changed["images"][0]["reason"] == "the bundle holds it with compression gzip, zstd was asked for"
    assert changed["removed"] == [old_file]
    assert changed["images"][0]["file"].endswith(".tar.zst")
    assert os.listdir(os.path.join(dest, "images")) == [os.path.basename(changed["images"][0]["file"])]
    assert old_file in changed["diff"]["before"] and old_file not in changed["diff"]["after"]
    assert sha256sum_ok(dest)[0]


def test_bad_level_is_refused(test_images, run, tmp_path):
    result = run("image_save", {"images": [test_images.refs["multi"]], "dest": str(tmp_path / "b"), "compression": "gzip",
                                "compression_level": 12})
    assert result["failed"] is True
    assert result["msg"] == "compression level 12 is out of range for gzip: expected 1 to 9"


def test_prune_removes_images_no_longer_listed(test_images, run, tmp_path):
    dest = str(tmp_path / "bundle")
    both = run("image_save", {"images": [test_images.refs["multi"], test_images.refs["shared-a"]], "dest": dest, "pull": "never"})
    assert not both["failed"], both["msg"]
    kept_only = run("image_save", {"images": [test_images.refs["multi"]], "dest": dest, "pull": "never"})
    assert kept_only["changed"] is False and len(manifest_of(dest)["images"]) == 2, "without prune, other images stay"

    check = run("image_save", {"images": [test_images.refs["multi"]], "dest": dest, "pull": "never", "prune": True}, check=True)
    assert check["changed"] is True and check["pruned"] == [both["images"][1]["file"]]
    assert len(manifest_of(dest)["images"]) == 2, "check mode pruned"

    pruned = run("image_save", {"images": [test_images.refs["multi"]], "dest": dest, "pull": "never", "prune": True})
    assert pruned["changed"] is True and pruned["pruned"] == pruned["removed"] == [both["images"][1]["file"]]
    assert [entry["references"] for entry in manifest_of(dest)["images"]] == [[test_images.refs["multi"]]]
    assert os.listdir(os.path.join(dest, "images")) == [os.path.basename(both["images"][0]["file"])]
    ok, output = sha256sum_ok(dest)
    assert ok and output.count(": OK") == 1, output


def test_a_truncated_or_missing_tarball_is_written_again(test_images, run, tmp_path):
    dest = str(tmp_path / "bundle")
    params = {"images": [test_images.refs["multi"]], "dest": dest, "pull": "never", "compression": "none"}
    first = run("image_save", params)
    path, size = first["images"][0]["path"], first["images"][0]["size"]
    with open(path, "r+b") as handle:
        handle.truncate(size - 1)
    repaired = run("image_save", params)
    assert repaired["changed"] is True
    assert repaired["images"][0]["reason"] == "%s has %d bytes, bundle.json records %d" % (first["images"][0]["file"], size - 1, size)
    # the new tarball gets a name no committed entry uses; the damaged one goes once bundle.json no longer lists it
    path = repaired["images"][0]["path"]
    assert repaired["images"][0]["file"] != first["images"][0]["file"] and not os.path.exists(first["images"][0]["path"])
    assert os.path.getsize(path) == size and sha256sum_ok(dest)[0]
    os.unlink(path)
    again = run("image_save", params)
    assert again["changed"] is True and again["images"][0]["reason"] == "%s is missing" % repaired["images"][0]["file"]
    # uncompressed saves of the same image are byte-identical: same checksum as the first time
    assert again["images"][0]["sha256"] == first["images"][0]["sha256"]


def test_other_files_in_sha256sums_are_kept(test_images, run, tmp_path):
    dest = str(tmp_path / "bundle")
    run("image_save", {"images": [test_images.refs["multi"]], "dest": dest, "pull": "never"})
    # Lines under images/ and wheels/ come from bundle.json; lines for any other file are the user's.
    os.makedirs(os.path.join(dest, "extra"))
    with open(os.path.join(dest, "extra", "site-notes.txt"), "wb") as handle:
        handle.write(b"carried in with the bundle")
    line = subprocess.run(["sha256sum", "extra/site-notes.txt"], cwd=dest, capture_output=True, text=True,
                          check=True).stdout.strip()
    with open(os.path.join(dest, "SHA256SUMS"), "a") as handle:
        handle.write(line + "\n")
    result = run("image_save", {"images": [test_images.refs["multi"], test_images.refs["shared-b"]], "dest": dest, "pull": "never"})
    assert result["changed"] is True
    with open(os.path.join(dest, "SHA256SUMS")) as handle:
        assert line in handle.read().splitlines()
    ok, output = sha256sum_ok(dest)
    assert ok and output.count(": OK") == 3, output


def test_force_loads_again_and_check_mode_predicts_a_bad_file(local_engine, test_images, run, tmp_path):
    dest = str(tmp_path / "bundle")
    run("image_save", {"images": [test_images.refs["shared-b"]], "dest": dest, "pull": "never"})
    forced = run("image_load", {"bundle": dest, "force": True})
    assert not forced["failed"], forced["msg"]
    assert forced["changed"] is True and with_action(forced, "loaded")[0]["image_id"] == test_images.ids["shared-b"]

    entry = manifest_of(dest)["images"][0]
    with open(os.path.join(dest, entry["file"]), "r+b") as handle:
        handle.seek(10)
        handle.write(b"XX")
    predicted = run("image_load", {"bundle": dest, "force": True}, check=True)
    assert predicted["failed"] is True
    assert predicted["msg"].startswith("%s failed its checksum: expected sha256 %s, actual " % (os.path.join(dest, entry["file"]), entry["sha256"]))
