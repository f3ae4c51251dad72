"""playbooks/site.yml's preflight for zstd layers (format version 2, compression zstd): with the registry strategy, a
Docker host whose engine is older than 23 cannot pull zstd layers from the site registry (Docker 20.10 fails with
"unexpected EOF" and falls back to Docker Hub), so the run stops in its first play, before the registry, a daemon.json
or a Python environment changes, naming each such host and its engine. Engines: this machine's Docker 20.10 and a
trixie lab host's Docker 26, each named by a host's offline_images_docker_host (local connection). Molecule `registry`
shows Docker 26 pulling such layers through the mirror by their Docker Hub name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from module_runner import COLLECTIONS_ROOT, REPO_ROOT

BIN = Path(sys.executable).parent
LOCAL_DOCKER_HOST = "unix:///var/run/docker.sock"
PREFLIGHT_PLAY = "Check the bundle, and whether the Docker hosts' engines can pull its layers, before changing anything"
ASK = "Ask the engine of each Docker host that would pull zstd layers from the site registry for its version"
STOP = "Stop before any change when a Docker host's engine cannot pull the bundle's zstd layers"


@pytest.fixture(scope="module")
def saved(test_images, tmp_path_factory, module_runner):
    """{compression: a version 2 bundle of one small image with layers of that compression}."""
    bundles = {}
    for compression in ("zstd", "gzip"):
        dest = str(tmp_path_factory.mktemp("fi-z-preflight-%s" % compression))
        result = module_runner("image_save", {"images": [test_images.refs["shared-a"]], "bundle": dest, "format_version": 2,
                                              "compression": compression, "pull": "never"})
        assert not result["failed"], result["msg"]
        bundles[compression] = dest
    return bundles


def inventory(tmp_path, docker_hosts):
    """A registry host (this machine's engine, never asked) and Docker hosts {name: their engine's docker_host}."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    data = {"all": {"children": {
        "registry": {"hosts": {"fi-z-registry": dict(local, offline_images_docker_host=LOCAL_DOCKER_HOST)}},
        "docker_hosts": {"hosts": {name: dict(local, offline_images_docker_host=url) for name, url in docker_hosts.items()}},
    }}}
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(data))
    return str(path)


def site_run(inventory_path, bundle_dir, *options):
    """(return code, {(play, task): {host: result}}, stderr) of site.yml, run with the json callback."""
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", inventory_path, "-e", json.dumps({"bundle": bundle_dir}), *options,
                           str(REPO_ROOT / "playbooks" / "site.yml")], env=env, capture_output=True, text=True, check=False, timeout=300)
    output = json.loads(proc.stdout)
    tasks = {(play["play"]["name"], task["task"]["name"]): task["hosts"] for play in output["plays"] for task in play["tasks"]}
    return proc.returncode, tasks, proc.stderr


def asked(tasks):
    """{host: engine version} of the Docker hosts whose engine the preflight asked."""
    return {host: result["stdout"] for host, result in tasks[(PREFLIGHT_PLAY, ASK)].items() if not result.get("skipped")}


def test_a_docker_20_10_host_stops_the_registry_strategy_before_any_change(saved, local_engine, trixie_engine, test_images, tmp_path):
    hosts = inventory(tmp_path, {"fi-z-old": LOCAL_DOCKER_HOST, "fi-z-new": trixie_engine.docker_host})
    # The whole playbook (in check mode, in case the check were gone): nothing after the preflight may run.
    rc, tasks, stderr = site_run(hosts, saved["zstd"], "--check")
    assert rc != 0, tasks
    assert asked(tasks) == {"fi-z-old": local_engine.version, "fi-z-new": trixie_engine.version}
    assert local_engine.version.startswith("20.10.") and int(trixie_engine.version.split(".")[0]) >= 23
    msg = next(result["msg"] for result in tasks[(PREFLIGHT_PLAY, STOP)].values() if result.get("failed"))
    assert "fi-z-old (Docker %s)" % local_engine.version in msg and "fi-z-new" not in msg and "fi-z-registry" not in msg, msg
    assert "The bundle %s holds zstd layers (%s)" % (saved["zstd"], test_images.refs["shared-a"]) in msg, msg
    assert "cannot pull zstd layers" in msg and "Nothing was changed" in msg and "-e site_images_strategy=copy" in msg, msg
    assert {play for play, _task in tasks} == {PREFLIGHT_PLAY}, sorted(tasks)
    assert "Traceback" not in stderr


def test_zstd_layers_pass_when_every_docker_host_runs_docker_23_or_later(saved, trixie_engine, tmp_path):
    hosts = inventory(tmp_path, {"fi-z-new": trixie_engine.docker_host})
    rc, tasks, stderr = site_run(hosts, saved["zstd"], "--tags", "preflight")
    assert rc == 0, (tasks, stderr)
    assert asked(tasks) == {"fi-z-new": trixie_engine.version}
    assert all(result.get("skipped") for result in tasks[(PREFLIGHT_PLAY, STOP)].values())
    assert "WARNING" not in stderr and "ERROR" not in stderr, stderr


@pytest.mark.parametrize("compression, extra", [
    ("zstd", {"site_images_strategy": "copy"}),  # image_load decompresses zstd layers for Docker 20.10
    ("gzip", {}),  # the default: every engine pulls gzip layers, nothing to ask
    ("zstd", {"site_registry_image": "SHARED_A"}),  # only the registry image has zstd layers: its host loads it itself
], ids=["copy-strategy", "gzip-layers", "only-the-registry-image"])
def test_no_engine_is_asked_when_no_docker_host_pulls_zstd_layers(saved, test_images, trixie_engine, tmp_path, compression, extra):
    hosts = inventory(tmp_path, {"fi-z-old": LOCAL_DOCKER_HOST, "fi-z-new": trixie_engine.docker_host})
    variables = {name: test_images.refs["shared-a"] if value == "SHARED_A" else value for name, value in extra.items()}
    rc, tasks, stderr = site_run(hosts, saved[compression], "--tags", "preflight", "-e", json.dumps(variables))
    assert rc == 0, (tasks, stderr)
    assert asked(tasks) == {}
    assert "WARNING" not in stderr and "ERROR" not in stderr, stderr
