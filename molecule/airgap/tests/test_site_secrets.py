"""The secrets the site run was given (molecule.yml) appear in no output, log or `docker inspect`:
every playbook output of the scenario (Ansible's log_path: prepare, converge with diffs, idempotence,
the verifier's own runs: this file's name sorts after the others, so it runs last), every host's
journal and /var/log, and
`docker inspect` of every container on every host. A hit names the secret's form and where it was."""

from __future__ import annotations

import os
import subprocess
import urllib.parse

import pytest

from test_airgap import SSH_CONFIG
from test_airgap_runs import EPHEMERAL

ALL_HOSTS = {"airgap-registry": "10.230.77.10", "airgap-node1": "10.230.77.11", "airgap-node2": "10.230.77.12",
             "airgap-node3": "10.230.77.13"}
PROXY_PASSWORD = "fi-stage-Prx%40s3cr3t"
# Each secret as given, and as a program could print it (the proxy password also decoded).
SECRETS = {
    "registry user's password": ["fi-stage-RegPass-7c41e9"],
    "registry http secret": ["fi-stage-HttpSecret-93ad0b"],
    "daemon proxy password": [PROXY_PASSWORD, urllib.parse.unquote(PROXY_PASSWORD)],
}


def found(text):
    return ["%s (%s)" % (name, form) for name, forms in SECRETS.items() for form in forms if form in text]


def on_host(address, command):
    proc = subprocess.run(["ssh", "-F", SSH_CONFIG, address, command], capture_output=True, check=False, timeout=120)
    proc.stdout, proc.stderr = (stream.decode("utf-8", "replace") for stream in (proc.stdout, proc.stderr))
    assert proc.returncode == 0, "%s on %s: rc=%d %s" % (command, address, proc.returncode, proc.stderr)
    return proc.stdout


def test_the_scan_sees_the_secrets_where_they_belong():
    # the scan is not blind: the proxy URL is in the Docker hosts' configuration, on purpose
    text = on_host(ALL_HOSTS["airgap-node2"], "cat /etc/docker/daemon.json /etc/systemd/system/docker.service.d/*.conf 2>/dev/null || true")
    assert found(text) == ["daemon proxy password (%s)" % PROXY_PASSWORD], text


def test_no_secret_in_any_playbook_output_of_the_scenario():
    with open(os.path.join(EPHEMERAL, "ansible.log"), encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()
    assert any("PLAY [Bring up the air-gapped site]" in line or "Run the site registry" in line for line in lines)
    hits = ["ansible.log line %d: %s: %s" % (number, ", ".join(found(line)), line[:300])
            for number, line in enumerate(lines, 1) if found(line)]
    assert not hits, "\n".join(hits[:20])


@pytest.mark.parametrize("name", sorted(ALL_HOSTS))
def test_no_secret_in_the_hosts_logs(name):
    logs = {
        "journalctl": on_host(ALL_HOSTS[name], "journalctl --no-pager -o cat 2>/dev/null || true"),
        "/var/log": on_host(ALL_HOSTS[name], "find /var/log -type f -exec cat {} + 2>/dev/null || true"),
    }
    hits = ["%s %s: %s" % (name, where, ", ".join(found(line)) + ": " + line[:300])
            for where, text in logs.items() for line in text.splitlines() if found(line)]
    assert not hits, "\n".join(hits[:20])


@pytest.mark.parametrize("name", sorted(ALL_HOSTS))
def test_no_secret_in_docker_inspect(name):
    text = on_host(ALL_HOSTS[name], "ids=$(docker ps -aq); [ -z \"$ids\" ] || docker inspect $ids")
    hits = found(text)
    assert not hits, "docker inspect on %s shows the %s" % (name, ", ".join(hits))
