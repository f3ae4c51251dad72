"""daemon_config on lab hosts, each with systemd and its own engine: Docker 20.10 (bookworm, no
`dockerd --validate`, proxies through a drop-in) and Docker 26 (trixie, `--validate`, proxies in
daemon.json). The module runs there as Ansible runs it (docker connection); it never reloads or
restarts the engine, so the hosts' engines keep running what they started with.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from lab import engine as lab_engine
from lab import hosts as lab_hosts
from lab import images as lab_images

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PREFIX = "fi-dmn-it"
LAB_DROPIN = "/etc/systemd/system/docker.service.d/10-lab.conf"
RECORD = "/var/lib/fleet-images/daemon-applied.json"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One bookworm and one trixie lab host, by distro."""
    lab_engine.ensure()
    lab_images.ensure(["host-bookworm", "host-trixie"])
    started = lab_hosts.start(count=2, prefix=PREFIX, distro="mixed")
    try:
        yield {host.distro: host for host in started}
    finally:
        lab_hosts.stop(PREFIX, quiet=True)


def host_run(host, *command):
    done = subprocess.run(["docker", "exec", host.name] + list(command), capture_output=True, text=True, check=False)
    return done


def run_in_host(host, params, tmp_path, check_mode=False):
    """Run fleet.images.daemon_config inside a lab host with ansible-playbook; return the task result."""
    playbook = tmp_path / ("daemon-config-%s.yml" % host.name)
    play = [{
        "name": "daemon_config on a lab host",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [{"name": "Run daemon_config", "fleet.images.daemon_config": params, "check_mode": check_mode}],
    }]
    playbook.write_text(json.dumps(play))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, ".build", "collections"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
        ANSIBLE_NOCOLOR="1",
        # As the site runs it: no remote temp directory made by the controller before the module runs.
        ANSIBLE_PIPELINING="True",
    )
    done = subprocess.run(
        ["ansible-playbook", "-i", "%s," % host.name, "-c", "community.docker.docker", str(playbook)],
        capture_output=True, text=True, env=env, check=False, timeout=600,
    )
    try:
        report = json.loads(done.stdout)
        return report["plays"][0]["tasks"][0]["hosts"][host.name]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("ansible-playbook printed no result (rc=%s)\nstdout:%s\nstderr:%s" % (done.returncode, done.stdout, done.stderr))


def file_state(host, path):
    done = host_run(host, "sh", "-c", "sha256sum %s 2>/dev/null; ls -A %s" % (path, os.path.dirname(path)))
    return done.stdout


@pytest.fixture()
def clean_config(lab):
    """Each test starts without daemon.json, the proxy drop-in and the record of what the engine runs."""
    for host in lab.values():
        host_run(host, "rm", "-f", "/etc/docker/daemon.json", "/etc/systemd/system/docker.service.d/http-proxy.conf", RECORD)
        host_run(host, "systemctl", "daemon-reload")
    return lab


def test_the_unit_is_read_through_systemctl(clean_config, tmp_path):
    for host in clean_config.values():
        result = run_in_host(host, {"registry_mirrors": ["https://mirror.example:5000"]}, tmp_path, check_mode=True)
        assert result["changed"] and result["needs"] == "reload"
        unit = result["unit"]
        assert unit["exec_start_file"] == LAB_DROPIN and LAB_DROPIN in unit["files"]
        assert "-H fd://" in unit["flags"] and "-H unix:///lab/docker.sock" in unit["flags"]
        assert unit["reload"] is True
        assert host_run(host, "test", "-e", "/etc/docker/daemon.json").returncode == 1, "check mode wrote daemon.json"


def test_hosts_against_the_units_dash_h_is_refused_on_both_generations(clean_config, tmp_path):
    for host in clean_config.values():
        host_run(host, "sh", "-c", "echo '{\"log-level\": \"info\"}' > /etc/docker/daemon.json")
        before = file_state(host, "/etc/docker/daemon.json")
        result = run_in_host(host, {"settings": {"hosts": ["unix:///var/run/docker.sock"]}}, tmp_path)
        assert result["failed"]
        assert "daemon.json key 'hosts' conflicts with the flag '-H fd://' that %s passes to dockerd" % LAB_DROPIN in result["msg"]
        assert file_state(host, "/etc/docker/daemon.json") == before


def test_docker_26_validates_with_dockerd_and_takes_proxies_in_daemon_json(clean_config, tmp_path):
    host = clean_config["trixie"]
    params = {"registry_mirrors": ["https://mirror.example:5000"], "backup": True,
              "proxies": {"http": "http://proxy.example:3128", "https": "http://proxy.example:3128", "no_proxy": "localhost,127.0.0.1"}}
    result = run_in_host(host, params, tmp_path)
    assert result["changed"], result.get("msg")
    assert result["engine"]["engine_version"].startswith("26.")
    assert result["validation"]["dockerd"] == "passed", result["validation"]
    assert result["proxy_method"] == "daemon_json" and result["dropin"]["state"] == "absent"
    assert result["needs"] == "restart" and result["needs_keys"] == {"reload": ["registry-mirrors"], "restart": ["proxies"]}
    written = json.loads(host_run(host, "cat", "/etc/docker/daemon.json").stdout)
    assert written == {"registry-mirrors": ["https://mirror.example:5000"],
                       "proxies": {"http-proxy": "http://proxy.example:3128", "https-proxy": "http://proxy.example:3128", "no-proxy": "localhost,127.0.0.1"}}
    assert host_run(host, "test", "-e", "/etc/systemd/system/docker.service.d/http-proxy.conf").returncode == 1
    # written, not applied (the module never restarts Docker): the rerun says so until the record is made
    again = run_in_host(host, params, tmp_path)
    assert not again["changed"] and again["pending"] and again["needs"] == "restart"
    assert run_in_host(host, {"state": "applied"}, tmp_path)["changed"]
    settled = run_in_host(host, params, tmp_path)
    assert not settled["changed"] and settled["needs"] == "none"


@pytest.mark.parametrize("settings, said", [
    # passes the module's own checks; only dockerd knows the file does not exist on that host
    ({"userland-proxy-path": "/nonexistent/docker-proxy"}, "invalid userland-proxy-path"),
    # an unknown key is left to dockerd where it can validate
    ({"live-restor": True}, "live-restor"),
])
def test_docker_26_dockerd_validate_refuses_and_nothing_is_written(clean_config, tmp_path, settings, said):
    host = clean_config["trixie"]
    host_run(host, "sh", "-c", "echo '{\"log-level\": \"info\"}' > /etc/docker/daemon.json")
    before = file_state(host, "/etc/docker/daemon.json")
    # A fresh host has no ~/.ansible/tmp: the candidate goes elsewhere, so Ansible warns of nothing.
    host_run(host, "rm", "-rf", "/root/.ansible/tmp")
    result = run_in_host(host, {"settings": settings}, tmp_path)
    assert not [warning for warning in result.get("warnings", []) if "remote_tmp" in warning], result.get("warnings")
    assert result["failed"]
    hostname = host_run(host, "hostname").stdout.strip()
    assert result["msg"].startswith("dockerd --validate on %s refused the new /etc/docker/daemon.json, which was not written:" % hostname)
    assert said in result["msg"]
    assert result["validation"]["dockerd"] == "failed"
    # same content, and no temporary candidate left in /etc/docker
    assert file_state(host, "/etc/docker/daemon.json") == before


def test_docker_20_10_has_no_validate_and_takes_proxies_in_a_drop_in(clean_config, tmp_path):
    host = clean_config["bookworm"]
    params = {"registry_mirrors": ["https://mirror.example:5000"],
              "proxies": {"http": "http://proxy.example:3128", "https": "http://proxy.example:3128", "no_proxy": ["localhost", "127.0.0.1"]}}
    result = run_in_host(host, params, tmp_path)
    assert result["changed"], result.get("msg")
    assert result["engine"]["engine_version"].startswith("20.10.")
    assert result["validation"]["dockerd"] == "unavailable"
    assert result["proxy_method"] == "systemd"
    assert result["dropin"]["state"] == "present" and result["dropin"]["systemd_reloaded"] is True
    environment = host_run(host, "systemctl", "show", "docker", "-p", "Environment").stdout
    for expected in ("HTTP_PROXY=http://proxy.example:3128", "HTTPS_PROXY=http://proxy.example:3128", "NO_PROXY=localhost,127.0.0.1"):
        assert expected in environment, environment
    assert json.loads(host_run(host, "cat", "/etc/docker/daemon.json").stdout) == {"registry-mirrors": ["https://mirror.example:5000"]}
    assert not run_in_host(host, params, tmp_path)["changed"]
    assert run_in_host(host, {"state": "applied"}, tmp_path)["changed"]

    # the daemon.json method on 20.10 would keep dockerd from starting: refused
    refused = run_in_host(host, dict(params, proxy_method="daemon_json"), tmp_path)
    assert refused["failed"] and "'proxies' needs Docker Engine 23.0 or later; this engine is 20.10" in refused["msg"]


def test_docker_20_10_refuses_an_unknown_key_itself(clean_config, tmp_path):
    result = run_in_host(clean_config["bookworm"], {"settings": {"live-restor": True}}, tmp_path)
    assert result["failed"]
    assert "'live-restor' is not a daemon.json key dockerd knows (did you mean 'live-restore'?)" in result["msg"]


def test_a_flag_name_as_key_is_refused_although_dockerd_26_accepts_it(clean_config, tmp_path):
    # dockerd --validate says "configuration OK" for registry-mirror and then ignores it
    result = run_in_host(clean_config["trixie"], {"settings": {"registry-mirror": ["https://mirror.example"]}}, tmp_path)
    assert result["failed"]
    assert "'registry-mirror' is the name of dockerd's command-line flag; in daemon.json it is 'registry-mirrors'" in result["msg"]


def test_a_full_etc_docker_leaves_daemon_json_intact_on_both_generations(clean_config, tmp_path):
    for host in clean_config.values():
        setup = ("set -e; mkdir -p /root/fi-dmn-full; mount -t tmpfs -o size=64k fi-dmn-full /root/fi-dmn-full; "
                 "echo '{\"debug\": false}' > /root/fi-dmn-full/daemon.json; "
                 "dd if=/dev/zero of=/root/fi-dmn-full/filler bs=4k 2>/dev/null || true")
        assert host_run(host, "sh", "-c", setup).returncode == 0
        try:
            result = run_in_host(host, {"path": "/root/fi-dmn-full/daemon.json", "registry_mirrors": ["https://mirror.example:5000"],
                                        "backup": True}, tmp_path)
            assert result["failed"] and "no space left on device" in result["msg"], result
            assert result["msg"].startswith("Cannot write /root/fi-dmn-full/daemon.json on ")
            assert host_run(host, "ls", "-A", "/root/fi-dmn-full").stdout.split() == ["daemon.json", "filler"]
            assert host_run(host, "cat", "/root/fi-dmn-full/daemon.json").stdout == '{"debug": false}\n'
        finally:
            host_run(host, "umount", "/root/fi-dmn-full")
