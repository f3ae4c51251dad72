"""Whole runs from the verifier: a second site run with every tarball replaced by zeros (so any
read, copy, load or push of one would fail), and a bundle with one corrupted tarball."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
SCENARIO = os.path.join(PROJECT, "molecule", "airgap")
BUNDLE = os.path.join(EPHEMERAL, "bundle")
DOCKER_HOSTS = ["airgap-node1", "airgap-node2", "airgap-node3"]


def playbook(path, env, args=()):
    """Run a playbook against the scenario's inventory, as Molecule runs converge (`args`: more ansible-playbook arguments)."""
    run_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(EPHEMERAL, "ansible.cfg"),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".build", "collections"),
                   ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", AIRGAP_BUNDLE=BUNDLE)
    run_env.update(env)
    return subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], path, *args],
                          capture_output=True, text=True, env=run_env, check=False, timeout=900)


def recap(output):
    """{host: {"ok": n, "changed": n, "failed": n, ...}} from a PLAY RECAP."""
    hosts = {}
    for match in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", output, re.MULTILINE):
        hosts[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


def test_a_second_site_run_reads_and_moves_no_tarball(tmp_path):
    garbage = str(tmp_path / "bundle")
    shutil.copytree(BUNDLE, garbage)
    for name in os.listdir(os.path.join(garbage, "images")):
        path = os.path.join(garbage, "images", name)
        size = os.path.getsize(path)
        with open(path, "wb") as handle:
            handle.write(b"\0" * size)
    result = playbook(os.path.join(SCENARIO, "converge.yml"), {"AIRGAP_BUNDLE": garbage})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    counts = recap(result.stdout)
    assert set(DOCKER_HOSTS) <= set(counts), counts
    assert all(numbers["changed"] == 0 for numbers in counts.values()), counts


def test_a_corrupted_tarball_fails_on_every_host_before_any_load(tmp_path):
    result = playbook(os.path.join(SCENARIO, "corrupt_bundle.yml"), {"AIRGAP_BAD_BUNDLE": str(tmp_path / "bad-bundle")})
    # corrupt_bundle.yml asserts on every host that the failure named the file and the sha256,
    # that the image was not loaded and that no tarball was copied, then restores the image
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "failed its check" in output and "airgap-app" in output
    counts = recap(result.stdout)
    assert all(counts[name]["failed"] == 0 and counts[name]["rescued"] >= 1 for name in DOCKER_HOSTS), counts
