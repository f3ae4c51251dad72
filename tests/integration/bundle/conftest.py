"""Engines and test images for the image_save / image_load tests.

Two engine generations: this machine's Docker Engine (20.10, docker-archive) and the engine of a
trixie lab host (Docker 26, OCI layout), reached through its socket. Test images are built
offline from fleet-lab/base:bookworm with a random marker per session, so no engine has them
before the session starts; they are small (a few MB) to keep the suite fast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field

import docker
import pytest

from ports import free_port

LOCAL_DOCKER_HOST = "unix:///var/run/docker.sock"
PREFIX = "itest-bundle"
BASE_IMAGE = "fleet-lab/base:bookworm"


@dataclass
class Engine:
    """One Docker Engine the tests load into or save from."""

    name: str
    docker_host: str
    client: docker.DockerClient = field(repr=False)
    container: str = ""  # the lab host's container, for engines inside one

    @property
    def version(self):
        return self.client.version()["Version"]

    def image_id(self, name):
        try:
            return self.client.api.inspect_image(name)["Id"]
        except docker.errors.NotFound:
            return None

    def remove(self, *names):
        """Remove images (by tag or ID) if present, children before parents as given."""
        for name in names:
            try:
                self.client.api.remove_image(name, force=True)
            except docker.errors.NotFound:
                pass

    def run_cli(self, *args, **kwargs):
        return subprocess.run(["docker", "-H", self.docker_host] + list(args), check=True, capture_output=True, **kwargs)


def make_engine(name, docker_host, container=""):
    return Engine(name, docker_host, docker.DockerClient(base_url=docker_host, version="auto", timeout=120), container)


def lab_host(distro, prefix):
    """Start one lab host and return its Engine; stop_lab_host(prefix) removes it."""
    from lab import hosts, images

    images.ensure(["host-" + distro])
    host = hosts.start(1, prefix, distro)[0]
    return make_engine(distro, host.docker_host, host.name)


def stop_lab_host(prefix):
    from lab import hosts

    hosts.stop(prefix, quiet=True)


@pytest.fixture(scope="session")
def local_engine():
    return make_engine("local", LOCAL_DOCKER_HOST)


@pytest.fixture(scope="session")
def trixie_engine():
    """A trixie lab host (Docker 26) for this session, started with the lab's Python API and removed at the end."""
    prefix = "%s-%d" % (PREFIX, os.getpid())
    try:
        yield lab_host("trixie", prefix)
    finally:
        stop_lab_host(prefix)


@pytest.fixture(scope="session")
def bookworm_engine():
    """A bookworm lab host (Docker 20.10, Python 3.11, python3-docker 5.0.3): what most managed hosts run."""
    prefix = "%s-bw-%d" % (PREFIX, os.getpid())
    try:
        yield lab_host("bookworm", prefix)
    finally:
        stop_lab_host(prefix)


CONTAINERD_STORE = '{"features": {"containerd-snapshotter": true}}'


@pytest.fixture(scope="session")
def containerd_engine():
    """A trixie lab host whose Docker 26 uses the containerd image store (image IDs are manifest digests)."""
    prefix = "%s-ctrd-%d" % (PREFIX, os.getpid())
    engine = lab_host("trixie", prefix)
    engine.name = "containerd"
    try:
        subprocess.run(["docker", "exec", engine.container, "bash", "-c",
                        "echo '%s' > /etc/docker/daemon.json && systemctl restart docker" % CONTAINERD_STORE], check=True, capture_output=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                info = engine.client.info()
                break
            except Exception:  # the engine restarts: its socket comes back within seconds
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert info["Driver"] == "overlayfs" and "io.containerd.snapshotter" in json.dumps(info.get("DriverStatus")), info["Driver"]
        yield engine
    finally:
        stop_lab_host(prefix)


@pytest.fixture(scope="session", params=["local", "trixie"])
def target(request, local_engine):
    """Each engine generation in turn, as the side that loads."""
    return local_engine if request.param == "local" else request.getfixturevalue("trixie_engine")


@dataclass
class TestImages:
    """Images built on the local engine for this session."""

    marker: str
    refs: dict  # short name -> reference
    ids: dict   # short name -> image ID

    @property
    def round_trip(self):
        """One multi-layer image, and two sharing their base layers."""
        return [self.refs["multi"], self.refs["shared-a"], self.refs["shared-b"]]

    def all_refs(self):
        # children first, so removal never trips over a parent
        order = ["multi", "shared-a", "shared-b", "bad", "shared-base"]
        return [self.refs[name] for name in order if name in self.refs]


DOCKERFILES = {
    # Three layers: random bytes, a binary copied from the lab's base image, repetitive text.
    "multi": """FROM {base} AS source
FROM scratch
COPY random.bin /data/random.bin
COPY --from=source /bin/bash /bin/bash
COPY text.txt /data/text.txt
LABEL fleet.images.test={marker} fleet.images.role=multi
""",
    "shared-base": """FROM {base} AS source
FROM scratch
COPY --from=source /usr/lib/x86_64-linux-gnu/libc.so.6 /lib/libc.so.6
COPY random.bin /base/random.bin
LABEL fleet.images.test={marker}
""",
    "shared-a": """FROM {prefix}/shared-base:{marker}
COPY text.txt /a/text.txt
LABEL fleet.images.role=shared-a
""",
    "shared-b": """FROM {prefix}/shared-base:{marker}
COPY random.bin /b/random.bin
LABEL fleet.images.role=shared-b
""",
    "bad": """FROM scratch
COPY random.bin /bad/random.bin
COPY text.txt /bad/text.txt
LABEL fleet.images.test={marker} fleet.images.role=bad
""",
}


def build(engine, context, name, marker):
    reference = "%s/%s:%s" % (PREFIX, name, marker)
    with open(os.path.join(context, "Dockerfile"), "w") as handle:
        handle.write(DOCKERFILES[name].format(base=BASE_IMAGE, marker=marker, prefix=PREFIX))
    with open(os.path.join(context, "random.bin"), "wb") as handle:
        handle.write(os.urandom(1024 * 1024))
    with open(os.path.join(context, "text.txt"), "w") as handle:
        handle.write(("%s %s line of repetitive text\n" % (name, marker)) * 20000)
    image, _logs = engine.client.images.build(path=context, tag=reference, rm=True, forcerm=True, pull=False)
    return reference, image.id


@pytest.fixture(scope="session")
def test_images(local_engine, tmp_path_factory):
    from lab import images

    if local_engine.image_id(BASE_IMAGE) is None:
        images.ensure(["base"])
    marker = uuid.uuid4().hex[:10]
    refs = {}
    ids = {}
    for name in ("shared-base", "multi", "shared-a", "shared-b", "bad"):
        context = str(tmp_path_factory.mktemp("build-%s" % name))
        refs[name], ids[name] = build(local_engine, context, name, marker)
    built = TestImages(marker, refs, ids)
    yield built
    local_engine.remove(*built.all_refs())
    local_engine.remove(*[ids[name] for name in ("multi", "shared-a", "shared-b", "bad", "shared-base")])


@pytest.fixture(scope="session")
def bundles(test_images, tmp_path_factory, module_runner):
    """The round-trip images saved from the local engine with every compression, before any test removes them."""
    saved = {}
    for compression in ("none", "gzip", "zstd"):
        dest = str(tmp_path_factory.mktemp("bundle-%s" % compression))
        result = module_runner("image_save", {"images": test_images.round_trip, "dest": dest, "compression": compression, "pull": "never"})
        assert not result["failed"], result["msg"]
        saved[compression] = dest
    return saved


@pytest.fixture()
def run(module_runner):
    """run(module, params, check=False, diff=False) → result dict."""
    def runner(name, params, check=False, diff=False):
        return module_runner(name, params, check_mode=check, diff=diff)
    return runner


@pytest.fixture(scope="session")
def local_registry(local_engine):
    """A registry:2 container (the lab's image) on a loopback port of this machine; yields host:port."""
    if local_engine.image_id("registry:2") is None:
        from lab import images

        images.ensure(["registry"])
    port = free_port()
    container = local_engine.client.containers.run(
        "registry:2", name="%s-registry-%d" % (PREFIX, os.getpid()), detach=True,
        ports={"5000/tcp": ("127.0.0.1", port)}, labels={"fleet.images.test": PREFIX},
    )
    address = "127.0.0.1:%d" % port
    try:
        # docker-proxy accepts connections before the registry inside answers: wait for the API itself
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen("http://%s/v2/" % address, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield address
    finally:
        container.remove(force=True, v=True)


def damage_copy(source, target):
    """A private copy of a bundle for a test that damages it."""
    shutil.copytree(source, target)
    return target
