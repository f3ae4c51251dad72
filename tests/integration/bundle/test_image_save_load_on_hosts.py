"""The modules run on the managed hosts' own Python, SDK and zstandard, as Ansible runs them there.

bookworm: Python 3.11, python3-docker 5.0.3, Docker 20.10.
trixie:   Python 3.13, python3-docker 7.x, Docker 26.
The lab hosts have the zstd tool but not the zstandard Python package, like most hosts: the zstd
bundle is read and written through the tool. A bundle is copied into the lab host and
ansible runs the modules there (community.docker.docker connection), against the host's engine.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".build", "collections")


def copy_into(container, source_dir, target_dir):
    """Copy a directory into a container (docker cp of a tar stream; /root is on disk, not tmpfs)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(source_dir, arcname=".")
    subprocess.run(["docker", "exec", container, "mkdir", "-p", target_dir], check=True)
    subprocess.run(["docker", "cp", "-", "%s:%s" % (container, target_dir)], input=buffer.getvalue(), check=True, capture_output=True)


def run_on_host(engine, module, params, check_mode=False):
    """Run fleet.images.<module> on the lab host with ansible (docker connection), as a play would; return its result."""
    command = ["ansible", "all", "-i", "%s," % engine.container, "-c", "community.docker.docker",
               "-e", "ansible_python_interpreter=/usr/bin/python3", "-m", "fleet.images.%s" % module, "-a", json.dumps(params)]
    if check_mode:
        command.append("--check")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    try:
        output = json.loads(proc.stdout)
        result = output["plays"][0]["tasks"][0]["hosts"][engine.container]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("ansible ran %s on %s without a result (rc=%d)\n%s\n%s" % (module, engine.name, proc.returncode, proc.stdout, proc.stderr))
    result["rc"] = proc.returncode
    return result


def host_versions(engine):
    """[python, docker SDK, zstandard or 'none'] on the host."""
    script = ("python3 -c 'import sys, docker, importlib.util; print(sys.version.split()[0], docker.__version__, "
              "\"yes\" if importlib.util.find_spec(\"zstandard\") else \"none\")'")
    return subprocess.run(["docker", "exec", engine.container, "bash", "-c", script], check=True, capture_output=True, text=True).stdout.split()


@pytest.fixture(params=["bookworm", "trixie"])
def host(request):
    return request.getfixturevalue("%s_engine" % request.param)


def test_load_and_save_with_the_hosts_own_python(host, bundles, test_images):
    versions = host_versions(host)
    if host.name == "bookworm":
        assert versions[1].startswith("5.0"), "the bookworm lab host should carry python3-docker 5.0.x: %s" % versions
    else:
        assert versions[0].startswith("3.13"), versions
    copy_into(host.container, bundles["zstd"], "/root/bundle")
    host.remove(*test_images.round_trip + [test_images.ids[ref.split("/")[1].split(":")[0]] for ref in test_images.round_trip])

    check = run_on_host(host, "image_load", {"bundle": "/root/bundle"}, check_mode=True)
    assert check["rc"] == 0, check.get("msg")
    assert check["changed"] is True and len(check["loaded"]) == 3

    loaded = run_on_host(host, "image_load", {"bundle": "/root/bundle"})
    assert loaded["rc"] == 0, loaded.get("msg")
    assert "warnings" not in loaded, loaded.get("warnings")   # the data root is measured on the host itself
    for item, ref in zip(loaded["loaded"], test_images.round_trip):
        assert item["image_id"] == test_images.ids[ref.split("/")[1].split(":")[0]]
        assert host.image_id(ref) == item["image_id"]

    again = run_on_host(host, "image_load", {"bundle": "/root/bundle"})
    assert again["rc"] == 0 and again["changed"] is False and len(again["present"]) == 3

    saved = run_on_host(host, "image_save", {"images": test_images.round_trip, "dest": "/root/out", "pull": "never"})
    assert saved["rc"] == 0, saved.get("msg")
    assert saved["changed"] is True and [image["image_id"] for image in saved["images"]] == [item["image_id"] for item in loaded["loaded"]]
    sums = subprocess.run(["docker", "exec", host.container, "bash", "-c", "cd /root/out && sha256sum -c SHA256SUMS"],
                          capture_output=True, text=True, check=False)
    assert sums.returncode == 0 and sums.stdout.count(": OK") == 3, sums.stdout + sums.stderr
    resaved = run_on_host(host, "image_save", {"images": test_images.round_trip, "dest": "/root/out", "pull": "never"})
    assert resaved["rc"] == 0 and resaved["changed"] is False
