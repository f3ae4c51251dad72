"""An air-gapped controller: no Galaxy, no community.crypto, no network. The built tarball installs
with the one command docs/awx.md gives, and a play runs the installed collection's modules.
The controller is the execution environment (ee/build, cached by its inputs): it has
ansible-core and no other collection."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

PLAY = """- name: Use the installed collection
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Run one of the installed collection's modules (it imports the SDK, then finds no engine there)
      fleet.images.image_save:
        bundle: /tmp/bundle
        images: [fe-airgap-install:1]
        docker_host: unix:///tmp/fe-no-engine.sock
      register: save
      failed_when: false
    - name: The module ran and named the missing engine (not a missing package)
      ansible.builtin.assert:
        that: [save.msg is search('fe-no-engine.sock'), save.msg is not search('(?i)python|module named|sdk')]
        fail_msg: "{{ save.msg }}"
    - name: The EE's Python has every package the collection's controller side needs
      ansible.builtin.command:
        argv: ["{{ ansible_playbook_python }}", "-c", "import docker, requests, zstandard, cryptography, bcrypt"]
      changed_when: false
"""

SCRIPT = """set -e
cd /tmp
# No collection but this one anywhere on this controller (community.crypto included).
ansible-galaxy collection list --format json | python3 -c 'import json, sys
names = {n for found in json.load(sys.stdin).values() for n in found if not n.startswith("ansible.")}
assert names == {"fleet.images"}, names'
# A controller's own collections directory, empty: the documented command, nothing else.
export ANSIBLE_COLLECTIONS_PATH=/tmp/collections
ansible-galaxy collection install --offline /in/fleet-images.tar.gz
ansible-doc -t module fleet.images.image_load | head -1
ansible-playbook -i localhost, /in/play.yml
"""


@pytest.fixture(scope="module")
def ee_image():
    proc = subprocess.run([str(REPO_ROOT / "ee" / "build")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.splitlines()[-1]


def test_tarball_installs_offline_without_its_optional_collection(ee_image, tmp_path):
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO_ROOT)], check=True, capture_output=True)
    next(tmp_path.glob("fleet-images-*.tar.gz")).rename(tmp_path / "fleet-images.tar.gz")
    (tmp_path / "play.yml").write_text(PLAY)
    tmp_path.chmod(0o755)
    proc = subprocess.run(
        ["docker", "run", "--rm", "--name", "fe-airgap-install", "--network", "none", "-v", "%s:/in:ro" % tmp_path,
         ee_image, "bash", "-c", SCRIPT],
        capture_output=True, text=True, check=False, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "fleet.images:0.1.0 was installed successfully" in output
    assert "/tmp/collections/ansible_collections/fleet/images" in output
    assert "failed=0" in output and "WARNING" not in output, output
