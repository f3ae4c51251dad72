"""The offline_images role's `stage` and `unstage` entry points on this machine (a local connection):
exactly the files asked for, and bundle.json, land root-only in the staging directory; a rerun sends
nothing; a name the bundle does not carry is refused before anything is made; a full disk stops the
host naming it, the directory and the bytes, and leaves nothing under a final name."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid

import pytest

from module_runner import COLLECTIONS_ROOT

FILES = {"images/one.tar": 300 * 1024, "images/two.tar": 2 * 1024 * 1024}


@pytest.fixture()
def bundle(tmp_path):
    """A v1 bundle of two (opaque) tarballs: the entry points only copy, the loader checks."""
    directory = tmp_path / "bundle"
    (directory / "images").mkdir(parents=True)
    images, sums = [], []
    for index, (name, size) in enumerate(sorted(FILES.items())):
        data = os.urandom(size)
        (directory / name).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        images.append({"references": ["fi-b-stage/img%d:1" % index], "file": name, "compression": "none", "size": size, "sha256": digest})
        sums.append("%s  %s\n" % (digest, name))
    (directory / "bundle.json").write_text(json.dumps({"format": "fleet.images/bundle", "version": 1, "images": images}))
    (directory / "SHA256SUMS").write_text("".join(sums))
    return str(directory)


@pytest.fixture()
def base():
    """A root-owned 0755 directory under /var/lib for the staging directory."""
    path = "/var/lib/fi-b-stage-%s" % uuid.uuid4().hex[:8]
    os.mkdir(path, 0o755)
    yield path
    subprocess.run(["umount", path], capture_output=True, check=False)
    shutil.rmtree(path, ignore_errors=True)


def run_entry(tmp_path, entry_point, **role_vars):
    """Run one entry point on localhost; return (ansible-playbook's result, {task name: result})."""
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": entry_point, "ansible.builtin.include_role": {"name": "fleet.images.offline_images", "tasks_from": entry_point},
         "vars": role_vars},
        {"name": "facts", "ansible.builtin.debug": {"msg": {"dir": "{{ offline_images_staged_dir | default('') }}",
                                                            "bytes": "{{ offline_images_staged_bytes | default(-1) }}"}}},
    ]}]
    playbook = tmp_path / ("%s.yml" % entry_point)
    playbook.write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_NOCOLOR="1")
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable,
                           str(playbook)], capture_output=True, text=True, env=env, check=False, timeout=300)
    try:
        plays = json.loads(done.stdout)["plays"]
    except ValueError:
        raise AssertionError("ansible-playbook printed no JSON (rc=%s)\n%s\n%s" % (done.returncode, done.stdout, done.stderr)) from None
    tasks = {}
    for task in plays[0]["tasks"]:
        tasks.setdefault(task["task"]["name"], []).append(task["hosts"]["localhost"])
    return done, tasks


def changed(tasks):
    return [name for name, results in tasks.items() for result in results if result.get("changed")]


def failure(tasks):
    """The message the run stopped with (a rescued task's own failure comes before it)."""
    messages = [result["msg"] for results in tasks.values() for result in results if result.get("failed")]
    assert messages, tasks
    return messages[-1]


def test_stage_copies_exactly_the_files_asked_root_only_and_a_rerun_sends_nothing(tmp_path, bundle, base):
    staging = base + "/staging"
    done, tasks = run_entry(tmp_path, "stage", offline_images_bundle=bundle, offline_images_remote_dir=staging,
                            offline_images_stage_files=["images/one.tar"])
    assert done.returncode == 0, done.stdout[-3000:]
    assert tasks["facts"][0]["msg"] == {"dir": staging, "bytes": FILES["images/one.tar"]}
    assert sorted(os.listdir(staging)) == ["bundle.json", "images", "tmp"]
    assert os.listdir(staging + "/images") == ["one.tar"]
    for path in (staging, staging + "/images", staging + "/tmp"):
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o700 and os.lstat(path).st_uid == 0, path
    assert stat.S_IMODE(os.lstat(staging + "/images/one.tar").st_mode) == 0o600
    with open(os.path.join(bundle, "images/one.tar"), "rb") as source, open(staging + "/images/one.tar", "rb") as copy:
        assert source.read() == copy.read()

    again, tasks = run_entry(tmp_path, "stage", offline_images_bundle=bundle, offline_images_remote_dir=staging,
                             offline_images_stage_files=["images/one.tar"])
    assert again.returncode == 0 and changed(tasks) == [] and tasks["facts"][0]["msg"]["bytes"] == 0, again.stdout[-3000:]

    removed, tasks = run_entry(tmp_path, "unstage", offline_images_bundle=bundle, offline_images_remote_dir=staging,
                               offline_images_stage_files=["images/one.tar"])
    assert removed.returncode == 0, removed.stdout[-3000:]
    assert os.listdir(staging + "/images") == [] and os.path.exists(staging + "/bundle.json")


def test_unstage_keeps_the_copies_when_asked(tmp_path, bundle, base):
    staging = base + "/staging"
    done, _tasks = run_entry(tmp_path, "stage", offline_images_bundle=bundle, offline_images_remote_dir=staging,
                             offline_images_stage_files=["images/one.tar"])
    assert done.returncode == 0, done.stdout[-3000:]
    kept, tasks = run_entry(tmp_path, "unstage", offline_images_bundle=bundle, offline_images_remote_dir=staging,
                            offline_images_stage_files=["images/one.tar"], offline_images_keep_copies=True)
    assert kept.returncode == 0 and changed(tasks) == [] and os.listdir(staging + "/images") == ["one.tar"]


@pytest.mark.parametrize("name", ["../victim", "SHA256SUMS"])
def test_a_file_the_bundle_does_not_carry_is_refused_before_anything_is_made(tmp_path, bundle, base, name):
    staging = base + "/staging"
    done, tasks = run_entry(tmp_path, "stage", offline_images_bundle=bundle, offline_images_remote_dir=staging,
                            offline_images_stage_files=["images/one.tar", name])
    assert done.returncode != 0
    message = failure(tasks)
    assert message.startswith("localhost: nothing was copied: offline_images_stage_files names %s, which the bundle %s" % (name, bundle)), message
    assert not os.path.lexists(staging)
    # unstage never takes such a name as a path on the host either
    os.mkdir(staging, 0o700)
    victim = os.path.normpath(os.path.join(staging, name))
    os.makedirs(os.path.dirname(victim), 0o700, exist_ok=True)
    with open(victim, "w") as handle:
        handle.write("not the bundle's")
    done, tasks = run_entry(tmp_path, "unstage", offline_images_bundle=bundle, offline_images_remote_dir=staging,
                            offline_images_stage_files=[name])
    assert done.returncode == 0 and changed(tasks) == [] and os.path.exists(victim), done.stdout[-3000:]


def test_a_full_disk_stops_naming_host_directory_and_bytes_and_leaves_no_file(tmp_path, bundle, base):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", base], check=True)
    staging = base + "/staging"
    done, tasks = run_entry(tmp_path, "stage", offline_images_bundle=bundle, offline_images_remote_dir=staging,
                            offline_images_stage_files=["images/one.tar", "images/two.tar"])
    assert done.returncode != 0
    message = failure(tasks)
    assert message.startswith("localhost: copying into the staging directory %s failed, no image was loaded: " % staging), message
    assert "The files to stage need %d bytes there" % sum(FILES.values()) in message, message
    left = [os.path.join(root, name) for root, _dirs, names in os.walk(staging) for name in names]
    assert left == [staging + "/bundle.json"], left
