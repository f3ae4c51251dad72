"""site.yml's summary (issue 12 item 4): a line per host in the job output and `fleet_images` in
the run's custom stats (set_stats: AWX's job artifacts), built from the offline_images role's
documented fact and the registry role's push result, both in contract C2's item shape. The real
playbook runs from its summary task on, with those results given as the hosts' variables; the
Molecule scenarios `ee` and `airgap` run it end to end."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def item(reference, action, size, image_id="sha256:" + "a" * 64):
    return {"reference": reference, "references": [reference], "image_id": image_id, "action": action, "bytes": size}


HOSTS = {
    "fi-d-reg": {"registry_push_result": {"changed": True, "images": [item("nginx:1.25", "pushed", 300), item("app:2", "unchanged", 0)]}},
    "fi-d-node1": {"offline_images_result": {"strategy": "registry", "bytes_sent": 0,
                                             "images": [item("nginx:1.25", "pulled", 700), item("app:2", "unchanged", 0)]}},
    "fi-d-node2": {"offline_images_result": {"strategy": "copy", "bytes_sent": 2048,
                                             "images": [item("nginx:1.25", "loaded", 2048), item("app:2", "loaded", 1024)]}},
}


@pytest.fixture()
def inventory(tmp_path):
    host_vars = {name: dict(values, ansible_connection="local", ansible_python_interpreter=sys.executable)
                 for name, values in HOSTS.items()}
    data = {"all": {"children": {"registry": {"hosts": {"fi-d-reg": host_vars["fi-d-reg"]}},
                                 "docker_hosts": {"hosts": {n: host_vars[n] for n in ("fi-d-node1", "fi-d-node2")}}}}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def summary_run(inventory, *options):
    """site.yml from its summary on: (the custom stats, {host: its summary line}, stderr)."""
    env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ["PATH"]), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_SHOW_CUSTOM_STATS="1", ANSIBLE_COLLECTIONS_PATH=str(REPO_ROOT / ".build" / "collections"))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), "-e", "bundle=/nonexistent",
                           "--start-at-task", "Show what each host got in this run", *options,
                           str(REPO_ROOT / "playbooks" / "site.yml")], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    output = json.loads(proc.stdout)
    lines = {}
    for play in output["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == "Show what each host got in this run":
                lines.update({host: result["msg"] for host, result in task["hosts"].items()})
    return output["global_custom_stats"], lines, proc.stderr


def test_summary_in_custom_stats_and_one_line_per_host(inventory):
    stats, lines, stderr = summary_run(inventory)
    assert "WARNING" not in stderr and "ERROR" not in stderr, stderr
    summary = stats["fleet_images"]
    assert summary["check_mode"] is False
    assert summary["hosts"] == {name: HOSTS[name]["offline_images_result"] for name in ("fi-d-node1", "fi-d-node2")}
    assert summary["registry"] == {"host": "fi-d-reg", "images": HOSTS["fi-d-reg"]["registry_push_result"]["images"]}
    assert summary["bytes"] == 700 + 2048 + 1024 + 300
    assert lines["fi-d-node1"] == "summary | fi-d-node1 | registry | 2 image(s): pulled 1, unchanged 1 | 700.00 Bytes moved"
    assert lines["fi-d-node2"] == "summary | fi-d-node2 | copy | 2 image(s): loaded 2 | 3.00 KB moved"
    assert lines["fi-d-reg"] == "summary | fi-d-reg | site registry: 1 of 2 image(s) pushed"


def test_summary_in_check_mode_and_with_limit(inventory):
    stats, lines, stderr = summary_run(inventory, "--check", "--limit", "fi-d-node2")
    assert "WARNING" not in stderr, stderr
    summary = stats["fleet_images"]
    assert summary["check_mode"] is True and list(summary["hosts"]) == ["fi-d-node2"]
    assert list(lines) == ["fi-d-node2"] and lines["fi-d-node2"].endswith("| 3.00 KB to move")


def test_summary_with_only_the_registry_host(inventory):
    stats, lines, stderr = summary_run(inventory, "--limit", "registry")
    assert "WARNING" not in stderr, stderr
    assert stats["fleet_images"]["hosts"] == {} and stats["fleet_images"]["bytes"] == 300
    assert list(lines) == ["fi-d-reg"]


def shape(value):
    """The keys of every mapping, recursively (lists by their items' shape), for comparing examples."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items() if key not in HOSTS and not key.endswith(".site.example")} | {
            "<host>": shape(item) for key, item in value.items() if key in HOSTS or key.endswith(".site.example")}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_awx_guide_shows_what_the_summary_gives(inventory):
    """docs/awx.md's example artifacts and summary lines have the shape and format of a real run's."""
    guide = (REPO_ROOT / "docs" / "awx.md").read_text()
    section = guide.split("## 7. What the job shows", 1)[1]
    example = json.loads(re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1))
    stats, lines = summary_run(inventory)[:2]
    assert shape(example) == shape(stats)
    shown = re.findall(r"^    (summary \|.*)$", section, re.MULTILINE)
    assert len(shown) == 2
    node, registry = shown
    assert pattern(node) == pattern(lines["fi-d-node1"]) and pattern(registry) == pattern(lines["fi-d-reg"])


def pattern(line):
    """A summary line with its host, sizes and counts left out."""
    line = re.sub(r"[\w.-]+\.site\.example|fi-d-[\w-]+", "HOST", line)
    return re.sub(r"\d+(\.\d+)?", "N", re.sub(r"[\d.]+ (Bytes|KB|MB|GB|TB)", "SIZE", line))
