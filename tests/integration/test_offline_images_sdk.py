"""The offline_images role's `sdk` entry point on this machine (a local connection): which Python has
the Docker SDK (offline_images_python), what it says when none has, and that it changes no
interpreter behind the user's back. Replaces docker_sdk_info's probe tests: the role asks with one
command now."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from module_runner import COLLECTIONS_ROOT

# This machine's own Python: Debian's, without the Docker SDK (python3-docker is not installed here).
HOST_PYTHON = "/usr/bin/python3"


def host_python_lacks_docker():
    if not os.path.exists(HOST_PYTHON):
        return False
    return subprocess.run([HOST_PYTHON, "-c", "import docker"], capture_output=True, check=False).returncode != 0


@pytest.fixture()
def bundle(tmp_path):
    """A bundle with no image and no wheel: all the sdk entry point reads from it here."""
    directory = tmp_path / "bundle"
    directory.mkdir()
    (directory / "bundle.json").write_text(json.dumps({"format": "fleet.images/bundle", "version": 1, "images": []}))
    (directory / "SHA256SUMS").write_text("")
    return str(directory)


def run_sdk(tmp_path, bundle, interpreter, **role_vars):
    """Run the sdk entry point, then report the interpreter a module runs with and offline_images_python."""
    inventory = tmp_path / "inventory.ini"
    # An inventory variable, not an extra var: a set_fact of ansible_python_interpreter would override it.
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % interpreter)
    role_vars = dict(offline_images_bundle=bundle, **role_vars)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "sdk", "ansible.builtin.include_role": {"name": "fleet.images.offline_images", "tasks_from": "sdk"}, "vars": role_vars},
        {"name": "interpreter after", "ansible.builtin.setup": {"gather_subset": ["!all", "!min", "python"]}},
        {"name": "python", "ansible.builtin.debug": {"var": "offline_images_python"}},
    ]}]
    playbook = tmp_path / "sdk.yml"
    playbook.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_PYTHON_INTERPRETER="auto_silent")
    done = subprocess.run(["ansible-playbook", "-i", str(inventory), str(playbook)], capture_output=True, text=True, env=env,
                          check=False, timeout=300)
    tasks = {task["task"]["name"]: task["hosts"]["localhost"] for task in json.loads(done.stdout)["plays"][0]["tasks"]}
    return done, tasks


def the_one_failure(done, tasks):
    """The run failed, at exactly one task: its message."""
    assert done.returncode != 0
    failed = [result for result in tasks.values() if result.get("failed")]
    assert len(failed) == 1, tasks
    return failed[0]["msg"]


def test_a_python_with_the_sdk_is_the_one_named(tmp_path, bundle):
    done, tasks = run_sdk(tmp_path, bundle, sys.executable, offline_images_install_sdk=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert os.path.samefile(tasks["python"]["offline_images_python"], sys.executable)
    assert not any(result.get("changed") for result in tasks.values()), tasks


@pytest.mark.skipif(not host_python_lacks_docker(), reason="needs a Python without the Docker SDK at %s" % HOST_PYTHON)
def test_a_python_without_the_sdk_fails_naming_the_host_python_and_package_when_installing_is_off(tmp_path, bundle):
    done, tasks = run_sdk(tmp_path, bundle, HOST_PYTHON, offline_images_install_sdk=False,
                          offline_images_venv=str(tmp_path / "no-venv"))
    message = the_one_failure(done, tasks)
    assert message.startswith("localhost: %s cannot import the Docker SDK" % HOST_PYTHON), message
    assert "docker: No module named 'docker'" in message and "offline_images_install_sdk is false" in message, message
    assert not os.path.exists(tmp_path / "no-venv")


@pytest.mark.skipif(not host_python_lacks_docker(), reason="needs a Python without the Docker SDK at %s" % HOST_PYTHON)
def test_the_sdk_environment_is_named_and_no_interpreter_changes(tmp_path, bundle):
    # An SDK environment an earlier run made: here a bin/python that runs this test's Python (it has the SDK).
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\nexec %s \"$@\"\n" % sys.executable)
    (venv / "bin" / "python").chmod(0o755)
    done, tasks = run_sdk(tmp_path, bundle, HOST_PYTHON, offline_images_venv=str(venv))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert tasks["python"]["offline_images_python"] == str(venv / "bin" / "python")
    # The next module still runs with the inventory's interpreter: the role set no ansible_python_interpreter.
    assert os.path.samefile(tasks["interpreter after"]["ansible_facts"]["ansible_python"]["executable"], HOST_PYTHON)
    assert not any(result.get("changed") for result in tasks.values()), tasks


WHEEL_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), ".cache", "wheels")


def zstd_bundle(tmp_path):
    """A bundle whose one tarball is zstd: a host's Python then needs zstandard as well."""
    from ansible_collections.fleet.images.plugins.module_utils import bundle as bundle_io

    directory = str(tmp_path / "zstd-bundle")
    name = bundle_io.tarball_name("app:1", "zstd")
    content = b"\x28\xb5\x2f\xfd" + b"\0" * 60
    os.makedirs(os.path.join(directory, os.path.dirname(name)))
    with open(os.path.join(directory, name), "wb") as handle:
        handle.write(content)
    manifest = bundle_io.new_manifest()
    manifest["images"] = [{"references": ["app:1"], "tags": ["app:1"], "image_id": "sha256:" + "ab" * 32, "file": name,
                           "size": len(content), "sha256": hashlib.sha256(content).hexdigest(), "compression": "zstd"}]
    bundle_io.write_manifest(directory, manifest)
    return directory


@pytest.mark.skipif(not host_python_lacks_docker(), reason="needs a Python without the Docker SDK at %s" % HOST_PYTHON)
def test_a_zstd_bundle_needs_zstandard_in_the_hosts_python_too(tmp_path, bundle):
    # A Python with the SDK and requests but no zstandard: this machine's own, with docker and
    # requests installed from the cached wheels into an environment of its own.
    pips = glob.glob(os.path.join(WHEEL_CACHE, "pip-*.whl"))
    assert pips, "%s lacks the pip wheel: run scripts/setup" % WHEEL_CACHE
    python = str(tmp_path / "py" / "bin" / "python")
    subprocess.run([HOST_PYTHON, "-m", "venv", "--without-pip", str(tmp_path / "py")], check=True)
    subprocess.run([python, os.path.join(pips[0], "pip"), "install", "-q", "--disable-pip-version-check", "--no-index",
                    "--find-links", WHEEL_CACHE, "docker", "requests"], check=True)
    assert subprocess.run([python, "-c", "import zstandard"], capture_output=True, check=False).returncode != 0

    # no zstd tarball: docker and requests are all the modules need
    done, tasks = run_sdk(tmp_path, bundle, python, offline_images_install_sdk=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert tasks["python"]["offline_images_python"] == python

    # a zstd tarball: this Python will not do, and the message says what it lacks
    zstd = zstd_bundle(tmp_path)
    done, tasks = run_sdk(tmp_path, zstd, python, offline_images_install_sdk=False,
                          offline_images_venv=str(tmp_path / "no-venv"))
    message = the_one_failure(done, tasks)
    assert message.startswith("localhost: %s cannot import the Docker SDK" % python), message
    assert "zstandard: No module named 'zstandard'" in message and "docker:" not in message, message

    # the registry strategy: the host pulls, reads no tarball, and needs no zstandard
    done, tasks = run_sdk(tmp_path, zstd, python, offline_images_install_sdk=False,
                          offline_images_venv=str(tmp_path / "no-venv"), offline_images_strategy="registry")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert tasks["python"]["offline_images_python"] == python


def wheels_bundle(tmp_path, names):
    """A bundle listing wheels of these file names (bytes to hash, not real wheels: nothing installs them here)."""
    from ansible_collections.fleet.images.plugins.module_utils import bundle as bundle_io

    directory = tmp_path / ("wheels-%d" % len(list(tmp_path.iterdir())))
    (directory / "wheels").mkdir(parents=True)
    manifest = bundle_io.new_manifest()
    manifest["wheels"] = []
    for name in names:
        content = name.encode() * 10
        (directory / "wheels" / name).write_bytes(content)
        manifest["wheels"].append({"file": "wheels/" + name, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()})
    bundle_io.write_manifest(str(directory), manifest)
    return str(directory)


@pytest.mark.skipif(not host_python_lacks_docker(), reason="needs a Python without the Docker SDK at %s" % HOST_PYTHON)
def test_one_wheel_per_python_is_fine_two_versions_of_a_package_are_refused(tmp_path):
    common = ["pip-26.3-py3-none-any.whl", "docker-7.2.0-py3-none-any.whl"]
    two_versions = wheels_bundle(tmp_path, common + ["zstandard-0.24.0-cp311-cp311-manylinux2014_x86_64.whl",
                                                     "zstandard-0.25.0-cp313-cp313-manylinux2014_x86_64.whl"])
    done, tasks = run_sdk(tmp_path, two_versions, HOST_PYTHON, offline_images_venv=str(tmp_path / "venv"))
    assert done.returncode != 0
    failed = [(name, result) for name, result in tasks.items() if result.get("failed")]
    assert len(failed) == 1 and "holds more than one wheel of zstandard" in failed[0][1]["msg"], failed

    # One version, a wheel per CPython: past that check, the role goes on to its staging directory
    # (here one it refuses: under /tmp, which everyone can write to), so nothing is installed on this machine.
    per_python = wheels_bundle(tmp_path, common + ["zstandard-0.25.0-cp311-cp311-manylinux2014_x86_64.whl",
                                                   "zstandard-0.25.0-cp313-cp313-manylinux2014_x86_64.whl"])
    done, tasks = run_sdk(tmp_path, per_python, HOST_PYTHON, offline_images_venv=str(tmp_path / "venv"),
                          offline_images_remote_dir=str(tmp_path / "staging"))
    assert done.returncode != 0
    failed = [(name, result) for name, result in tasks.items() if result.get("failed")]
    assert failed and not any("more than one wheel" in result.get("msg", "") for _name, result in failed), failed
    assert all("staging directory" in name for name, _result in failed[:1]), failed
    assert not os.path.exists(tmp_path / "venv")


@pytest.fixture()
def staging_base():
    """A root-owned 0755 directory under /var/lib (the staging directory's parents must be root's alone)."""
    path = "/var/lib/fi-w-sdk-%s" % uuid.uuid4().hex[:8]
    os.mkdir(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def with_cached_wheels(directory):
    """List every wheel of the cache in `directory`'s bundle.json (copied into its wheels/), as bundle.yml does."""
    from ansible_collections.fleet.images.plugins.module_utils import bundle as bundle_io

    wheels = sorted(glob.glob(os.path.join(WHEEL_CACHE, "*.whl")))
    assert any("zstandard-" in name for name in wheels), "%s lacks the zstandard wheels: run scripts/setup" % WHEEL_CACHE
    os.makedirs(os.path.join(directory, "wheels"), exist_ok=True)
    manifest = bundle_io.load_manifest(directory)
    manifest["wheels"] = []
    for path in wheels:
        shutil.copy(path, os.path.join(directory, "wheels"))
        with open(path, "rb") as handle:
            manifest["wheels"].append({"file": "wheels/" + os.path.basename(path), "size": os.path.getsize(path),
                                       "sha256": hashlib.sha256(handle.read()).hexdigest()})
    bundle_io.write_manifest(directory, manifest)
    return directory


@pytest.mark.skipif(not host_python_lacks_docker(), reason="needs a Python without the Docker SDK at %s" % HOST_PYTHON)
def test_a_host_is_sent_only_the_wheels_it_installs(tmp_path, bundle, staging_base):
    staging, venv = staging_base + "/staging", staging_base + "/venv"
    host_tag = "cp%d%d" % tuple(json.loads(subprocess.run([HOST_PYTHON, "-c", "import sys, json; print(json.dumps(sys.version_info[:2]))"],
                                                          capture_output=True, text=True, check=True).stdout))

    # No zstd anywhere in the bundle: the SDK and its dependencies, none of zstandard's wheels.
    done, tasks = run_sdk(tmp_path, with_cached_wheels(bundle), HOST_PYTHON, offline_images_venv=venv, offline_images_remote_dir=staging)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    sent = sorted(os.listdir(staging + "/wheels"))
    assert not [name for name in sent if name.startswith("zstandard-")], sent
    assert [name for name in sent if name.startswith("docker-")] and [name for name in sent if name.startswith("pip-")], sent
    assert subprocess.run([venv + "/bin/python", "-c", "import docker, requests"], check=False).returncode == 0
    assert subprocess.run([venv + "/bin/python", "-c", "import zstandard"], capture_output=True, check=False).returncode != 0

    # A zstd tarball, loaded by this host (copy): zstandard's wheel for this host's CPython only, and installed.
    done, tasks = run_sdk(tmp_path, with_cached_wheels(zstd_bundle(tmp_path)), HOST_PYTHON, offline_images_venv=venv,
                          offline_images_remote_dir=staging, offline_images_strategy="copy")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    zstandard_wheels = [name for name in os.listdir(staging + "/wheels") if name.startswith("zstandard-")]
    assert len(zstandard_wheels) == 1 and "-%s-" % host_tag in zstandard_wheels[0], zstandard_wheels
    assert subprocess.run([venv + "/bin/python", "-c", "import zstandard"], check=False).returncode == 0
