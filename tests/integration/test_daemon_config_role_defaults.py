"""The daemon role's default mirror and CA follow the registry role's documented facts of the host itself
(`registry_url`, `registry_address`, `registry_ca_cert`), never another host's variables (no engine needed)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

PLAYBOOK = """
- name: Evaluate the daemon role's defaults
  hosts: docker_hosts
  gather_facts: false
  vars_files:
    - {defaults}
  tasks:
    - name: Show the default mirrors
      ansible.builtin.debug:
        var: daemon_registry_mirrors
    - name: Show the default CA certificates
      ansible.builtin.debug:
        var: daemon_registry_ca_certs
"""


def defaults_per_host(tmp_path, inventory, task):
    """Run PLAYBOOK (the daemon role's defaults) on `inventory`; the results of its task number `task` per host."""
    (tmp_path / "inventory.ini").write_text(inventory)
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(defaults=os.path.join(REPO_ROOT, "roles", "daemon", "defaults", "main.yml")))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CONNECTION="local",
               ANSIBLE_PYTHON_INTERPRETER="auto_silent", ANSIBLE_NOCOLOR="1")
    done = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "inventory.ini"), str(tmp_path / "play.yml")],
                          capture_output=True, text=True, env=env, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["plays"][0]["tasks"][task]["hosts"]


@pytest.mark.parametrize("inventory, expected", [
    # the registry role's certificates play set the fact on every host of the play: each host uses its own
    ("[registry]\nreg1 registry_url=https://reg.site.example:5000\n[docker_hosts]\nnode1 registry_url=https://reg.site.example:5000\n",
     {"node1": ["https://reg.site.example:5000"]}),
    # only the registry host has it: the role does not reach into another host's variables
    ("[registry]\nreg1 registry_url=https://reg.site.example:5000\n[docker_hosts]\nnode1\n", {"node1": []}),
    # a host that has the fact itself (a client of the registry role's play) uses its own
    ("[registry]\nreg1 registry_url=https://reg.site.example:5000\n[docker_hosts]\nnode1 registry_url=https://own.example:5000\n",
     {"node1": ["https://own.example:5000"]}),
    # no registry anywhere: no mirror, and the role leaves the file's mirrors alone
    ("[docker_hosts]\nnode1\nnode2\n", {"node1": [], "node2": []}),
    ("[registry]\nreg1\n[docker_hosts]\nnode1\n", {"node1": []}),
])
def test_default_mirror_is_the_site_registry(tmp_path, inventory, expected):
    results = defaults_per_host(tmp_path, inventory, task=0)
    assert {host: result["daemon_registry_mirrors"] for host, result in results.items()} == expected


CA = "the-site-CA-as-PEM-text"


@pytest.mark.parametrize("inventory, expected", [
    ("[docker_hosts]\nnode1 registry_address=reg.site.example:5000 registry_ca_cert='%s'\n" % CA,
     {"node1": {"reg.site.example:5000": CA}}),
    # the registry host's facts are its own
    ("[registry]\nreg1 registry_address=reg.site.example:5000 registry_ca_cert='%s'\n[docker_hosts]\nnode1\n" % CA, {"node1": {}}),
    ("[docker_hosts]\nnode1 registry_address=reg.site.example:5000\n", {"node1": {}}),
])
def test_default_ca_is_the_hosts_own_registry_ca(tmp_path, inventory, expected):
    results = defaults_per_host(tmp_path, inventory, task=1)
    assert {host: result["daemon_registry_ca_certs"] for host, result in results.items()} == expected
