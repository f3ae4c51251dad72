"""The modules run on the managed hosts' own Python and SDK, as Ansible runs them there.

bookworm: Python 3.11, python3-docker 5.0.3, Docker 20.10.
trixie:   Python 3.13, python3-docker 7.x, Docker 26.
The lab hosts lack the zstandard Python package, like most hosts: zstandard comes from the
bundle's compiled wheels (one per CPython, playbooks/bundle.yml), installed as the offline_images
role installs them (name==version with every wheel's hash, no index, --find-links, --require-hashes)
into an environment that sees the host's own packages, so pip picks the wheel that fits and the
modules still run with the host's SDK. A bundle is copied into the lab host and ansible runs the
modules there (community.docker.docker connection), against the host's engine.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import pathlib
import subprocess
import tarfile

import pytest
from module_runner import with_action

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
COLLECTIONS_ROOT = os.path.join(REPO_ROOT, ".build", "collections")
# scripts/setup fills it the way playbooks/bundle.yml fills a bundle's wheels/ (tests reach no index).
WHEEL_CACHE = os.path.join(REPO_ROOT, ".cache", "wheels")
HOST_VENV = "/root/zstandard-venv"


def copy_into(container, source_dir, target_dir):
    """Copy a directory into a container (docker cp of a tar stream; /root is on disk, not tmpfs)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(source_dir, arcname=".")
    subprocess.run(["docker", "exec", container, "mkdir", "-p", target_dir], check=True)
    subprocess.run(["docker", "cp", "-", "%s:%s" % (container, target_dir)], input=buffer.getvalue(), check=True, capture_output=True)


def install_zstandard(engine):
    """zstandard from the cached wheels into HOST_VENV on the host; return the venv's [docker SDK version, zstandard wheel]."""
    wheels = sorted(glob.glob(os.path.join(WHEEL_CACHE, "zstandard-*.whl")))
    pips = glob.glob(os.path.join(WHEEL_CACHE, "pip-*.whl"))
    assert len(wheels) >= 2 and pips, "%s lacks the zstandard or pip wheels: run scripts/setup" % WHEEL_CACHE
    pin = "==".join(os.path.basename(wheels[0]).split("-")[:2])
    hashes = " ".join("--hash=sha256:%s" % hashlib.sha256(pathlib.Path(wheel).read_bytes()).hexdigest() for wheel in wheels)
    subprocess.run(["docker", "exec", engine.container, "mkdir", "-p", "/root/wheels"], check=True)
    for wheel in wheels + pips:
        subprocess.run(["docker", "cp", wheel, "%s:/root/wheels/" % engine.container], check=True, capture_output=True)
    script = ("set -e; printf '%%s\\n' '%s %s' > /root/requirements.txt; python3 -m venv --without-pip --system-site-packages %s; "
              "%s/bin/python /root/wheels/%s/pip install -q --disable-pip-version-check --no-index --find-links /root/wheels "
              "--no-cache-dir --require-hashes -r /root/requirements.txt; "
              "%s/bin/python -c 'import docker, zstandard; print(docker.__version__)'; ls %s/lib/python3*/site-packages | grep -i '^zstandard-'"
              % (pin, hashes, HOST_VENV, HOST_VENV, os.path.basename(pips[0]), HOST_VENV, HOST_VENV))
    done = subprocess.run(["docker", "exec", engine.container, "bash", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split()


def run_on_host(engine, module, params, check_mode=False, python=HOST_VENV + "/bin/python"):
    """Run fleet.images.<module> on the lab host with ansible (docker connection), as a play would; return its result."""
    command = ["ansible", "all", "-i", "%s," % engine.container, "-c", "community.docker.docker",
               "-e", "ansible_python_interpreter=%s" % python, "-m", "fleet.images.%s" % module, "-a", json.dumps(params)]
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
    assert versions[2] == "none", "the lab host's Python should lack zstandard: %s" % versions
    copy_into(host.container, bundles["zstd"], "/root/bundle")
    # Without zstandard (the zstd tool on the host is not used): the error names the host, its Python and what to install.
    hostname = subprocess.run(["docker", "exec", host.container, "hostname"], capture_output=True, text=True, check=True).stdout.strip()
    refused = run_on_host(host, "image_load", {"bundle": "/root/bundle"}, python="/usr/bin/python3")
    assert refused["rc"] != 0 and refused.get("failed") is True, refused
    assert "zstd is not available on this host (%s, Python /usr/bin/python3): install the Python package zstandard" % hostname in refused["msg"]
    sdk, installed = install_zstandard(host)
    assert sdk == versions[1], "the environment should run the host's own Docker SDK: %s" % sdk
    assert installed.startswith("zstandard-") and installed.endswith(".dist-info"), installed   # pip took one wheel: the fitting one
    host.remove(*test_images.round_trip + [test_images.ids[ref.split("/")[1].split(":")[0]] for ref in test_images.round_trip])

    check = run_on_host(host, "image_load", {"bundle": "/root/bundle"}, check_mode=True)
    assert check["rc"] == 0, check.get("msg")
    assert check["changed"] is True and len(with_action(check, "loaded")) == 3

    loaded = run_on_host(host, "image_load", {"bundle": "/root/bundle"})
    assert loaded["rc"] == 0, loaded.get("msg")
    assert "warnings" not in loaded, loaded.get("warnings")   # the data root is measured on the host itself
    for item, ref in zip(with_action(loaded, "loaded"), test_images.round_trip):
        assert item["image_id"] == test_images.ids[ref.split("/")[1].split(":")[0]]
        assert host.image_id(ref) == item["image_id"]

    again = run_on_host(host, "image_load", {"bundle": "/root/bundle"})
    assert again["rc"] == 0 and again["changed"] is False and len(with_action(again, "unchanged")) == 3

    saved = run_on_host(host, "image_save", {"images": test_images.round_trip, "dest": "/root/out", "pull": "never"})
    assert saved["rc"] == 0, saved.get("msg")
    assert saved["changed"] is True and [image["image_id"] for image in saved["images"]] == [item["image_id"] for item in with_action(loaded, "loaded")]
    sums = subprocess.run(["docker", "exec", host.container, "bash", "-c", "cd /root/out && sha256sum -c SHA256SUMS"],
                          capture_output=True, text=True, check=False)
    assert sums.returncode == 0 and sums.stdout.count(": OK") == 3, sums.stdout + sums.stderr
    resaved = run_on_host(host, "image_save", {"images": test_images.round_trip, "dest": "/root/out", "pull": "never"})
    assert resaved["rc"] == 0 and resaved["changed"] is False
