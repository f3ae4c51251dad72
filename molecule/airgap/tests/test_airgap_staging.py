"""The staging directory on a host under attack and under faults, from the verifier, on airgap-node3
(copy strategy, SDK from the bundle's wheels): a hostile local user preparing it, tampered and
unlisted wheels, a copy killed half way (kill -9 of the controller), a full disk during the copy."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

from test_airgap import ADDRESSES, SSH_CONFIG
from test_airgap_runs import BUNDLE, DOCKER_HOSTS, EPHEMERAL, PROJECT, SCENARIO, playbook, recap

NODE = "airgap-node3"
STAGING = "/var/lib/fleet-images/staging"
IMAGES = ["airgap-hello:1", "registry.example.com/fleet/airgap-app:1"]


def on_node(command, check=True):
    """Run a shell command as root on airgap-node3 over SSH; returns stdout."""
    proc = subprocess.run(["ssh", "-F", SSH_CONFIG, ADDRESSES[NODE], command], capture_output=True, text=True, check=False, timeout=120)
    if check:
        assert proc.returncode == 0, "%s: rc=%d %s %s" % (command, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def remove_images():
    on_node("docker image rm %s || true" % " ".join(IMAGES))


def images_present():
    return [reference for reference in IMAGES if on_node("docker image inspect %s >/dev/null 2>&1 && echo yes || true" % reference).strip()]


def process_tree(root):
    """`root` and every process under it (Ansible's workers start sessions of their own, so a process
    group does not hold them), from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def kill_tree(root):
    """kill -9 of the controller side of a run, as a power cut would: freeze the whole tree, then kill it."""
    frozen = set()
    while True:
        tree = [pid for pid in process_tree(root) if pid not in frozen]
        if not tree:
            break
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
            frozen.add(pid)
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run(path, env=None, args=()):
    result = playbook(os.path.join(SCENARIO, path), dict(env or {}), args)
    return result, result.stdout + result.stderr


def test_an_unprivileged_user_preparing_the_staging_directory_is_refused():
    # hostile_staging.yml asserts on each host (one variant each): refused naming host and path,
    # nothing loaded, the user's directory unchanged
    result, output = run("hostile_staging.yml")
    assert result.returncode == 0, output[-6000:]
    counts = recap(result.stdout)
    assert all(counts[name]["failed"] == 0 and counts[name]["rescued"] >= 1 for name in DOCKER_HOSTS), counts
    for expected in ("is owned by uid 65534", "is a symbolic link (to /var/tmp/fi-stage-theirs)", "/var/tmp has mode 1777"):
        assert expected in output, output[-3000:]


def _sdk_run(tmp_path, change):
    bad = str(tmp_path / "bundle")
    shutil.copytree(BUNDLE, bad)
    expected = change(bad)
    result, output = run("tampered_wheels.yml", {"AIRGAP_SDK_BUNDLE": bad})
    assert result.returncode == 0, output[-4000:]
    assert '"venv_made": false' in result.stdout, output[-3000:]
    return expected, result.stdout


def test_a_tampered_wheel_stops_the_install_before_pip_runs(tmp_path):
    def tamper(bundle_dir):
        with open(os.path.join(bundle_dir, "bundle.json")) as handle:
            pip = next(wheel for wheel in json.load(handle)["wheels"] if os.path.basename(wheel["file"]).startswith("pip-"))
        path = os.path.join(bundle_dir, pip["file"])
        with open(path, "r+b") as handle:
            handle.seek(os.path.getsize(path) // 2)
            byte = handle.read(1)
            handle.seek(-1, 1)
            handle.write(bytes([byte[0] ^ 0xFF]))
        with open(path, "rb") as handle:
            return os.path.basename(path), pip["sha256"], hashlib.sha256(handle.read()).hexdigest()

    (name, expected, actual), stdout = _sdk_run(tmp_path, tamper)
    assert "wheel %s/wheels/%s failed its check: expected sha256 %s, actual %s" % (STAGING, name, expected, actual) in stdout, stdout[-3000:]
    assert "No wheel was installed" in stdout


def test_a_bundle_without_a_list_of_wheels_is_refused(tmp_path):
    def unlist(bundle_dir):
        path = os.path.join(bundle_dir, "bundle.json")
        with open(path) as handle:
            manifest = json.load(handle)
        del manifest["wheels"]
        with open(path, "w") as handle:
            json.dump(manifest, handle)

    _expected, stdout = _sdk_run(tmp_path, unlist)
    assert "without a list of its wheels and their sha256 in bundle.json" in stdout and "Make the bundle again" in stdout, stdout[-3000:]


def test_a_copy_killed_half_way_leaves_nothing_under_ansible_tmp_and_the_next_run_removes_it():
    """Also: a check-mode site run in between removes nothing and its summary says 'would load'."""
    remove_images()
    on_node("rm -rf /root/.ansible/tmp/* %s/tmp/* %s/images/*" % (STAGING, STAGING))
    # sftp at 8 Mbit/s: the 4 MB app tarball takes seconds, long enough to kill the run mid-copy
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(EPHEMERAL, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".build", "collections"), AIRGAP_BUNDLE=BUNDLE)
    proc = subprocess.Popen(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(SCENARIO, "copy_node3.yml"),
                             "-e", "ansible_sftp_extra_args='-l 8000'"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 120
        partial = ""
        while not partial and time.time() < deadline and proc.poll() is None:
            partial = on_node("find %s/tmp -type f -size +200k 2>/dev/null | head -1" % STAGING).strip()
        assert partial, "no partial copy appeared under %s/tmp (playbook rc=%s)" % (STAGING, proc.poll())
    finally:
        kill_tree(proc.pid)
        proc.wait()
    time.sleep(2)
    left = on_node("find %s/tmp -type f -printf '%%s %%p\\n'" % STAGING)
    assert partial.split("/")[-2] in left, left
    # half way: no tarball there is whole (and nothing is writing any more)
    with open(os.path.join(BUNDLE, "bundle.json")) as handle:
        sizes = {entry["size"] for entry in json.load(handle)["images"]}
    assert not {int(line.split()[0]) for line in left.splitlines()} & sizes, left
    assert on_node("find %s/tmp -type f -printf '%%s %%p\\n'" % STAGING) == left
    assert on_node("find /root/.ansible/tmp -type f 2>/dev/null || true").strip() == ""
    assert images_present() == []
    # what the killed run left goes on the next run once it is old (here: made two hours old) ...
    on_node("find %s/tmp -mindepth 1 -exec touch -h -d '-2 hours' {} +" % STAGING)
    # ... but not in check mode, whose summary says what a run would load
    result, output = run("converge.yml", args=["--check", "--diff", "--limit", NODE])
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"summary \| %s \| copy \| 2 image\(s\): loaded 2 \| [\d.]+ \w+ to move" % NODE, output), output[-3000:]
    assert " moved" not in output
    assert on_node("find %s/tmp -type f -printf '%%s %%p\\n'" % STAGING) == left
    result, output = run("copy_node3.yml")
    assert result.returncode == 0, output[-4000:]
    assert on_node("ls -A %s/tmp %s/images" % (STAGING, STAGING)).split() == ["%s/images:" % STAGING, "%s/tmp:" % STAGING], \
        on_node("date; find %s -printf '%%t %%s %%p\\n'; ps -ef | grep -e sftp -e python" % STAGING) + output
    assert images_present() == IMAGES


def test_a_full_disk_during_the_copy_fails_clearly_loads_nothing_and_leaves_docker_running():
    remove_images()
    on_node("mkdir -p /var/lib/fi-stage-full && mount -t tmpfs -o size=3m,mode=0700 tmpfs /var/lib/fi-stage-full")
    try:
        result, output = run("full_disk_copy.yml")
        assert result.returncode == 0, output[-4000:]
        assert "full disk: %s: copying into the staging directory /var/lib/fi-stage-full/staging failed, no image was loaded" % NODE in output, \
            output[-4000:]
        assert "free space on that filesystem" in output
        assert images_present() == []
        assert on_node("systemctl is-active docker").strip() == "active"
        assert on_node("docker info --format '{{.ServerVersion}}'").strip()
        # this run's copies were removed; Ansible removed its own temp directory
        assert on_node("find /var/lib/fi-stage-full/staging/images /var/lib/fi-stage-full/staging/tmp -mindepth 1").strip() == ""
    finally:
        on_node("umount /var/lib/fi-stage-full; rm -rf /var/lib/fi-stage-full", check=False)
    result, output = run("copy_node3.yml")
    assert result.returncode == 0, output[-4000:]
    assert images_present() == IMAGES
