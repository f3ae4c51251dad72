"""Shared fixtures for integration tests: modules run as Ansible runs them, against real engines."""

from __future__ import annotations

import docker
import pytest

from module_runner import run_module

LOCAL_DOCKER_HOST = "unix:///var/run/docker.sock"


@pytest.fixture(scope="session")
def module_runner():
    return run_module


@pytest.fixture(scope="module")
def engine():
    """This machine's engine, holding the lab's registry:2 (built from Debian's docker-registry when absent)."""
    client = docker.DockerClient(base_url=LOCAL_DOCKER_HOST, version="auto", timeout=120)
    try:
        client.images.get("registry:2")
    except docker.errors.ImageNotFound:
        from lab import images

        images.ensure(["registry"])
    return client


@pytest.fixture()
def private_engine():
    """An engine of the test's own (never the shared one), that the test may kill or fill up."""
    from private_dockerd import PrivateEngine

    engine = PrivateEngine()
    try:
        yield engine
    finally:
        engine.stop()
