"""Each lab host boots systemd, runs its own Docker Engine of the expected generation, and runs containers."""

import json

EXPECTED_ENGINE = {"smoke-bookworm": "20.10.", "smoke-trixie": "26."}


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_docker_runs_as_a_systemd_service(host):
    docker = host.service("docker")
    assert docker.is_running
    assert docker.is_enabled


def test_engine_is_of_the_expected_generation(host):
    name = host.check_output("hostname")
    info = json.loads(host.check_output("docker info --format '{{json .}}'"))
    assert info["ServerVersion"].startswith(EXPECTED_ENGINE[name]), info["ServerVersion"]
    # The host's own engine, not the lab machine's: its data lives on the host's own volume.
    assert info["DockerRootDir"] == "/var/lib/docker"
    assert info["Name"] == name


def test_a_container_runs_inside(host):
    result = host.run("docker run --rm fleet-lab-smoke/hello:1")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "hello from the inner engine"
