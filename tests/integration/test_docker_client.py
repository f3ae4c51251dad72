"""The connection layer against the real local engine, and against addresses where none answers."""

from __future__ import annotations

import pytest

from ports import free_port

from ansible_collections.fleet.images.plugins.module_utils.docker_client import DockerConnectionError, build_client


def test_connects_to_the_local_engine():
    client = build_client({"docker_host": "unix:///var/run/docker.sock", "timeout": 10})
    assert client.version()["ApiVersion"]


def test_pinned_api_version_is_used():
    client = build_client({"docker_host": "unix:///var/run/docker.sock", "api_version": "1.40", "timeout": 10})
    assert client.api.api_version == "1.40"


def test_missing_socket_says_dockerd_is_not_running(tmp_path):
    host = "unix://%s" % (tmp_path / "docker.sock")
    with pytest.raises(DockerConnectionError, match="the socket does not exist. Is dockerd running") as error:
        build_client({"docker_host": host, "timeout": 5})
    assert host in str(error.value)


def test_closed_tcp_port_says_connection_refused():
    host = "tcp://127.0.0.1:%d" % free_port()
    with pytest.raises(DockerConnectionError, match="connection refused") as error:
        build_client({"docker_host": host, "timeout": 5})
    assert host in str(error.value)
