"""Make sure a Docker Engine answers on this machine: install Debian's docker.io and start dockerd."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import docker
import requests

from .common import DOCKER_SOCKET, LabError, run, say, timed

DOCKERD_LOG = "/var/log/fleet-lab-dockerd.log"
# What the lab itself needs from Debian besides the engine.
LAB_PACKAGES = {"dockerd": "docker.io", "debootstrap": "debootstrap", "docker-registry": "docker-registry", "zstd": "zstd"}


def client(base_url=DOCKER_SOCKET, timeout=120):
    return docker.DockerClient(base_url=base_url, version="auto", timeout=timeout)


def answers(base_url=DOCKER_SOCKET):
    try:
        client(base_url, timeout=5).ping()
        return True
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return False


def install_missing_packages():
    missing = sorted({pkg for command, pkg in LAB_PACKAGES.items() if shutil.which(command) is None})
    if not missing:
        return
    with timed("installed %s" % " ".join(missing)):
        run(["apt-get", "update", "-q"], "apt-get update")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing, "apt-get install", env=env)


def start_dockerd(timeout=60):
    """Start dockerd detached from this process (there is no systemd here) and wait for it."""
    with open(DOCKERD_LOG, "ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers():
            return
        time.sleep(0.5)
    with open(DOCKERD_LOG, "rb") as handle:
        tail = handle.read()[-3000:].decode("utf-8", "replace")
    raise LabError("dockerd did not answer on %s within %ds; last lines of %s:\n%s" % (DOCKER_SOCKET, timeout, DOCKERD_LOG, tail))


def ensure():
    """Install what the lab needs and start the engine when it does not answer. Returns its version."""
    install_missing_packages()
    if not answers():
        with timed("started dockerd (log: %s)" % DOCKERD_LOG):
            start_dockerd()
    version = client().version()["Version"]
    say("Docker Engine %s answers on %s" % (version, DOCKER_SOCKET))
    return version
