"""The copy strategy on a version 2 bundle, on Docker 20.10 (airgap-node1, bookworm) and 26 (airgap-node2,
trixie): images with the bundle's IDs, only the blobs of the layers a host lacks sent, nothing left in the
staging directory, and a rerun that sends nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

EPHEMERAL = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
PROJECT = os.environ["MOLECULE_PROJECT_DIRECTORY"]
SCENARIO = os.path.join(PROJECT, "molecule", "airgap")
BUNDLE_V2 = os.path.join(EPHEMERAL, "bundle-v2")
HOSTS = ["airgap-node1", "airgap-node2"]
EXTRA, SOLO, APP = "airgap-extra:1", "airgap-solo:1", "registry.example.com/fleet/airgap-app:1"


def entries():
    with open(os.path.join(BUNDLE_V2, "bundle.json")) as handle:
        return {entry["references"][0]: entry for entry in json.load(handle)["images"]}


def on(host, command):
    return subprocess.run(["docker", "exec", host, "bash", "-c", command], capture_output=True, text=True, check=False, timeout=120)


def copy_v2():
    """Run copy_v2.yml as converge does; return (the result, {host: offline_images_result})."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(EPHEMERAL, "ansible.cfg"), AIRGAP_BUNDLE_V2=BUNDLE_V2,
               ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, ".build", "collections"), ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    done = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], os.path.join(SCENARIO, "copy_v2.yml")],
                          capture_output=True, text=True, env=env, check=False, timeout=900)
    try:
        # profile_tasks prints a time line before the JSON document and its recap after it
        plays = json.JSONDecoder().raw_decode(done.stdout[re.search(r"^\{", done.stdout, re.MULTILINE).start():])[0]
    except (ValueError, AttributeError):
        raise AssertionError("no JSON from ansible-playbook (rc=%s)\n%s\n%s" % (done.returncode, done.stdout[-4000:], done.stderr[-2000:])) from None
    shown = [task for task in plays["plays"][-1]["tasks"] if task["task"]["name"] == "Show what each host got (the verifier reads it)"]
    results = {host: result["offline_images_result"] for task in shown for host, result in task["hosts"].items()}
    return done, plays["stats"], results


@pytest.mark.parametrize("host", HOSTS)
def test_the_v2_images_have_the_bundle_ids_on_both_engine_generations(host):
    for reference, entry in entries().items():
        got = on(host, "docker image inspect --format '{{.Id}}' %s" % reference)
        assert got.stdout.strip() == entry["config"]["digest"], (host, reference, got.stderr)
    assert on(host, "find /var/lib/fleet-images/staging/blobs -type f | wc -l").stdout.strip() == "0"


def test_a_host_gets_only_the_blobs_of_the_layers_it_lacks_and_a_rerun_sends_nothing():
    extra = entries()[EXTRA]
    for host in HOSTS:  # the host keeps airgap-app (the lower layers of airgap-extra) and airgap-solo
        assert on(host, "docker image rm %s" % EXTRA).returncode == 0
    done, _stats, results = copy_v2()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    own = extra["config"]["size"] + extra["layers"][-1]["size"]  # its config and its one layer of its own
    for host in HOSTS:
        items = {item["reference"]: item for item in results[host]["images"]}
        assert items[EXTRA]["action"] == "loaded" and items[EXTRA]["bytes"] == own, (host, items)
        assert items[SOLO]["action"] == "unchanged" and items[SOLO]["bytes"] == 0
        assert results[host]["bytes_sent"] == own, (host, results[host])
        assert on(host, "docker image inspect --format '{{.Id}}' %s" % EXTRA).stdout.strip() == extra["config"]["digest"]
    again, stats, results = copy_v2()
    assert again.returncode == 0, again.stdout[-4000:]
    assert all(stats[host]["changed"] == 0 for host in HOSTS), stats
    assert all(results[host]["bytes_sent"] == 0 for host in HOSTS), results
