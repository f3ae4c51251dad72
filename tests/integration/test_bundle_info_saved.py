"""bundle_info on a real bundle written by image_save from this machine's engine."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import uuid

import docker
import pytest

from module_runner import COLLECTIONS_ROOT


@pytest.fixture(scope="module")
def saved_bundle(tmp_path_factory, module_runner):
    """A two-image bundle (gzip) of tiny images imported on this machine's engine."""
    client = docker.from_env()
    tag = "fleet-test-bundle-info-%s" % uuid.uuid4().hex[:8]
    references = []
    for index in range(2):
        layer = io.BytesIO()
        with tarfile.open(fileobj=layer, mode="w") as archive:
            data = ("image %d of %s\n" % (index, tag)).encode() * 200
            info = tarfile.TarInfo("hello.txt")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        reference = "%s/img%d:1" % (tag, index)
        client.api.import_image_from_data(layer.getvalue(), repository=reference.rsplit(":", 1)[0], tag="1")
        references.append(reference)
    directory = str(tmp_path_factory.mktemp("bundle"))
    saved = module_runner("image_save", {"images": references, "dest": directory, "compression": "gzip", "pull": "never"})
    assert not saved["failed"], saved
    yield directory, references
    for reference in references:
        client.images.remove(reference, force=True)


def test_returns_what_image_save_wrote(saved_bundle, module_runner):
    directory, references = saved_bundle
    result = module_runner("bundle_info", {"path": directory, "verify": True})
    assert not result["failed"] and result["changed"] is False
    assert sorted(ref for image in result["images"] for ref in image["references"]) == sorted(references)
    for image in result["images"]:
        assert os.path.getsize(image["file_path"]) == image["size"]
        assert image["verified"] is True and image["compression"] == "gzip"
        assert image["file"] in result["sha256sums"] and image["sha256"] in result["sha256sums"]
        assert result["references"][image["references"][0]] == image["file"]
    assert result["images_size"] == sum(image["size"] for image in result["images"])


def test_a_flipped_byte_fails_naming_the_file(saved_bundle, tmp_path, module_runner):
    directory, references = saved_bundle
    copy = tmp_path / "copy"
    os.makedirs(copy / "images")
    for name in ("bundle.json", "SHA256SUMS"):
        (copy / name).write_bytes((open(os.path.join(directory, name), "rb")).read())
    info = module_runner("bundle_info", {"path": directory, "images": [references[1]]})
    target = info["images"][0]["file"]
    for name in os.listdir(os.path.join(directory, "images")):
        (copy / "images" / name).write_bytes(open(os.path.join(directory, "images", name), "rb").read())
    data = bytearray((copy / target).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / target).write_bytes(bytes(data))
    # presence and size still fine: only verify reads the content
    assert not module_runner("bundle_info", {"path": str(copy)})["failed"]
    result = module_runner("bundle_info", {"path": str(copy), "verify": True})
    assert result["failed"]
    assert str(copy / target) in result["msg"] and info["images"][0]["sha256"] in result["msg"]


def run_in_playbook(tmp_path, args):
    """bundle_info through ansible-playbook: the action plugin reads in-process on a local connection."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{"name": "read", "fleet.images.bundle_info": args}]}]
    playbook = tmp_path / "read.yml"
    playbook.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="False")
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable,
                           str(playbook)], capture_output=True, text=True, env=env, check=False, timeout=300)
    return json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_the_action_on_the_controller_returns_what_the_module_returns(saved_bundle, module_runner, tmp_path):
    directory, references = saved_bundle
    args = {"path": directory, "images": references[:1], "verify": True}
    module_result = module_runner("bundle_info", args)
    action_result = run_in_playbook(tmp_path, args)
    keys = ("path", "format_version", "images", "references", "files", "wheels", "images_size", "total_size", "sha256sums", "verified")
    assert {key: action_result[key] for key in keys} == {key: module_result[key] for key in keys}
    assert not action_result["changed"]


def test_the_action_reports_a_damaged_bundle_like_the_module(saved_bundle, tmp_path):
    directory, _references = saved_bundle
    failed = run_in_playbook(tmp_path, {"path": os.path.join(directory, "no-such-dir")})
    assert failed["failed"] and "no-such-dir" in failed["msg"]
