"""Changes on converged hosts: a mirror change (mirror_change.yml), seven bad inputs (bad_input.yml) and a
change written but not applied, then applied by a rerun (unapplied.yml).

Each side playbook runs once, on both hosts at the same time, from a module-scoped fixture that
records every host's state before and after; the per-host tests check those records. This file
runs after test_daemon.py, whose checks need the hosts as converge left them.
"""

import json
import os
import subprocess

import pytest
import testinfra

MIRROR = "https://mirror.lab.example:5000/"
SECOND_MIRROR = "https://mirror2.lab.example/"
SCENARIO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hostname(host):
    return host.check_output("hostname")


def state(host):
    """What must survive a reload: dockerd's process, the canary container, and what docker info shows."""
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    return dict(
        process=host.check_output("systemctl show docker --value --property MainPID") + " "
        + host.check_output("systemctl show docker --value --property ExecMainStartTimestampMonotonic"),
        canary=host.check_output("docker inspect --format '{{.State.StartedAt}} {{.State.Running}}' daemon-canary"),
        mirrors=info["RegistryConfig"]["Mirrors"],
        live_restore=info["LiveRestoreEnabled"],
        daemon_json=json.loads(host.file("/etc/docker/daemon.json").content_string),
        running=host.service("docker").is_running,
    )


def run_playbook(playbook):
    """Run a side playbook of this scenario on every host; return (rc, output)."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    project = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.dirname(os.path.dirname(SCENARIO_DIR)))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(project, ".build", "collections"), ANSIBLE_PIPELINING="1",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    done = subprocess.run(["ansible-playbook", "-i", inventory, os.path.join(SCENARIO_DIR, playbook)],
                          capture_output=True, text=True, env=env, check=False, timeout=900)
    return done.returncode, done.stdout + done.stderr


def recap(output, name):
    """The PLAY RECAP counters of one host, as a dict."""
    for line in output.splitlines():
        if line.startswith(name + " ") and "ok=" in line:
            return dict((key, int(value)) for key, value in (item.split("=") for item in line.split(":", 1)[1].split()))
    raise AssertionError("no recap line for %s in:\n%s" % (name, output))


@pytest.fixture(scope="module")
def lab_hosts(pytestconfig):
    inventory = pytestconfig.getoption("ansible_inventory") or os.environ.get("MOLECULE_INVENTORY_FILE")
    found = testinfra.get_hosts(["all"], connection="ansible", ansible_inventory=inventory)
    return dict((hostname(host), host) for host in found)


@pytest.fixture(scope="module")
def mirror_change(lab_hosts):
    before = dict((name, state(host)) for name, host in lab_hosts.items())
    first = run_playbook("mirror_change.yml")
    after = dict((name, state(host)) for name, host in lab_hosts.items())
    second = run_playbook("mirror_change.yml")
    return dict(before=before, first=first, after=after, second=second)


@pytest.fixture(scope="module")
def bad_input(lab_hosts, mirror_change):
    before = dict((name, state(host)) for name, host in lab_hosts.items())
    run = run_playbook("bad_input.yml")
    after = dict((name, state(host)) for name, host in lab_hosts.items())
    return dict(before=before, run=run, after=after)


def test_a_mirror_change_is_a_reload_that_keeps_dockerd_and_containers(host, mirror_change):
    name = hostname(host)
    rc, output = mirror_change["first"]
    assert rc == 0, output
    assert "Reload Docker (SIGHUP) and wait until dockerd reports" in output
    assert "Restart Docker and wait until the engine answers" not in output
    before, after = mirror_change["before"][name], mirror_change["after"][name]
    assert after["mirrors"] == [MIRROR, SECOND_MIRROR]
    assert after["live_restore"] is False
    assert after["process"] == before["process"], "dockerd was restarted for a mirror change"
    assert after["canary"] == before["canary"] and after["canary"].endswith(" true")


def test_the_same_mirror_change_again_changes_nothing(host, mirror_change):
    rc, output = mirror_change["second"]
    assert rc == 0 and recap(output, hostname(host))["changed"] == 0, output


def test_bad_input_fails_clearly_and_docker_keeps_its_configuration(host, bad_input):
    name = hostname(host)
    rc, output = bad_input["run"]
    counters = recap(output, name)
    # every case failed (rescued) and every assert in the rescues passed
    assert rc == 0 and counters["failed"] == 0, output
    assert counters["rescued"] == 7, output
    before, after = bad_input["before"][name], bad_input["after"][name]
    assert after["running"]
    assert after["daemon_json"] == before["daemon_json"]
    assert after["mirrors"] == before["mirrors"] == [MIRROR, SECOND_MIRROR]


@pytest.fixture(scope="module")
def unapplied(lab_hosts, bad_input):
    before = dict((name, state(host)) for name, host in lab_hosts.items())
    first = run_playbook("unapplied.yml")
    after = dict((name, state(host)) for name, host in lab_hosts.items())
    second = run_playbook("unapplied.yml")
    return dict(before=before, first=first, after=after, second=second)


def test_a_change_written_but_not_applied_is_applied_by_the_rerun(host, unapplied):
    name = hostname(host)
    rc, output = unapplied["first"]
    assert rc == 0 and recap(output, name)["failed"] == 0, output
    assert "Reload Docker (SIGHUP) and wait until dockerd reports" in output
    before, after = unapplied["before"][name], unapplied["after"][name]
    assert after["mirrors"] == [MIRROR, SECOND_MIRROR, "https://mirror3.lab.example/"]
    assert after["process"] == before["process"], "dockerd was restarted for a mirror change"
    rc, output = unapplied["second"]
    assert rc == 0 and recap(output, name)["changed"] == 0, output


def test_the_record_of_what_the_engine_runs_is_root_only(host, unapplied):
    record = host.file("/var/lib/fleet-images/daemon-applied.json")
    assert (record.mode, record.user) == (0o600, "root")
    assert (host.file("/var/lib/fleet-images").mode, host.file("/var/lib/fleet-images").user) == (0o700, "root")
    assert json.loads(record.content_string)["daemon_json"] == host.file("/etc/docker/daemon.json").content_string
