"""Lab images, built from Debian packages with debootstrap and `docker import` (no registry needed).

Each image carries a label with a hash of its recipe; an image whose label matches is reused, and
the root filesystem tarball of each recipe is cached so a rebuild after `docker rmi` is quick.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field

import docker

from . import engine
from .common import CACHE_DIR, LabError, run, say, timed

# Bump when the build steps below change in a way the recipe fields do not show.
BUILD_VERSION = 3
RECIPE_LABEL = "fleet-lab.recipe"
LAB_SOCKET_DIR = "/lab"

# python3-zstandard fails to configure inside debootstrap; hosts decompress zstd with the zstd
# command instead, which is the fallback image_load has to handle anyway.
HOST_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "python3", "python3-docker", "python3-requests",
    "zstd", "openssh-server", "sudo", "ca-certificates", "curl", "iproute2", "procps", "iptables", "docker.io",
]

# The inner engine also listens on /lab/docker.sock, which the lab bind-mounts from this machine
# so tests can reach every host's engine without a network.
DOCKER_DROPIN = """[Service]
ExecStart=
ExecStart=/usr/sbin/dockerd -H fd:// -H unix://{socket_dir}/docker.sock --containerd=/run/containerd/containerd.sock
{extra}"""

# Docker 26 on trixie fails to start containers in this sandbox unless told to leave IPv6 alone.
TRIXIE_DOCKER_ENV = "Environment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1\n"

SSHD_CONFIG = "PermitRootLogin prohibit-password\nUseDNS no\n"

# Units that only slow down or fail a boot inside a container.
MASKED_UNITS = ["getty@.service", "console-getty.service", "systemd-firstboot.service", "apt-daily.timer", "apt-daily-upgrade.timer"]

REGISTRY_CONFIG = """version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


@dataclass(frozen=True)
class Recipe:
    name: str
    tags: tuple
    suite: str = "bookworm"
    packages: tuple = ()
    changes: tuple = ()
    extra: dict = field(default_factory=dict)

    def fingerprint(self, *more):
        data = json.dumps([BUILD_VERSION, self.suite, self.packages, self.changes, sorted(self.extra.items()), more], sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:16]


# `docker import` on 20.10 takes no STOPSIGNAL: lab hosts get SIGRTMIN+3 when they are started.
HOST_CHANGES = ('CMD ["/sbin/init"]', "ENV container=docker")

RECIPES = {
    "host-bookworm": Recipe(
        "host-bookworm", ("fleet-lab/host:bookworm",), "bookworm", tuple(HOST_PACKAGES), HOST_CHANGES,
        {"docker_env": ""},
    ),
    "host-trixie": Recipe(
        "host-trixie", ("fleet-lab/host:trixie",), "trixie", tuple(HOST_PACKAGES + ["docker-cli"]), HOST_CHANGES,
        {"docker_env": TRIXIE_DOCKER_ENV},
    ),
    "base": Recipe("base", ("fleet-lab/base:bookworm",), "bookworm", (), ('CMD ["/bin/bash"]',)),
    # The execution environment's base (ee/): Python, pip and ensurepip (python3-venv, which
    # ansible-builder calls) from Debian, SSH to reach the hosts.
    # ansible-builder puts ansible-core and the collection's Python packages on it from local wheels.
    "ee-base": Recipe(
        "ee-base", ("fleet-lab/ee-base:bookworm",), "bookworm", ("python3", "python3-pip", "python3-venv", "openssh-client", "ca-certificates"),
        ('CMD ["/bin/bash"]', "ENV LANG=C.UTF-8"),
    ),
    "registry": Recipe(
        "registry", ("registry:2",), "bookworm", ("docker-registry",),
        ('ENTRYPOINT ["/bin/registry"]', 'CMD ["serve", "/etc/docker/registry/config.yml"]', "EXPOSE 5000/tcp", 'VOLUME ["/var/lib/registry"]'),
        {"config": REGISTRY_CONFIG},
    ),
}
DEFAULT_ORDER = ["base", "registry", "host-bookworm", "host-trixie", "ee-base"]


def debian_mirror():
    """The Debian mirror this machine's apt uses (deb822 or one-line sources)."""
    candidates = []
    sources_dir = "/etc/apt/sources.list.d"
    for name in sorted(os.listdir(sources_dir)) if os.path.isdir(sources_dir) else []:
        if name.endswith(".sources"):
            with open(os.path.join(sources_dir, name)) as handle:
                candidates += re.findall(r"^URIs:\s*(\S+)", handle.read(), re.MULTILINE)
    if os.path.exists("/etc/apt/sources.list"):
        with open("/etc/apt/sources.list") as handle:
            candidates += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", handle.read(), re.MULTILINE)
    for uri in candidates:
        if "security" not in uri and "/debian" in uri:
            return uri
    raise LabError("no Debian mirror found in /etc/apt/sources.list(.d): debootstrap needs one")


def registry_package_version():
    return run(["dpkg-query", "-W", "-f=${Version}", "docker-registry"], "reading the docker-registry package version").strip()


def recipe_hash(recipe):
    if recipe.name == "registry":
        return recipe.fingerprint(registry_package_version())
    return recipe.fingerprint()


def current_image(client, recipe, wanted_hash):
    try:
        image = client.images.get(recipe.tags[0])
    except docker.errors.ImageNotFound:
        return None
    return image if (image.labels or {}).get(RECIPE_LABEL) == wanted_hash else None


def debootstrap(recipe, rootfs):
    command = ["debootstrap", "--variant=minbase"]
    if recipe.packages:
        command.append("--include=" + ",".join(recipe.packages))
    command += [recipe.suite, rootfs, debian_mirror()]
    for attempt in (1, 2):
        try:
            run(command, "debootstrap %s" % recipe.suite)
            return
        except LabError as exc:
            shutil.rmtree(rootfs, ignore_errors=True)
            if attempt == 2:
                raise
            say("debootstrap %s failed, trying once more: %s" % (recipe.suite, exc))


def write(rootfs, path, content, mode=0o644):
    target = os.path.join(rootfs, path.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w") as handle:
        handle.write(content)
    os.chmod(target, mode)


def configure_host(recipe, rootfs):
    """Turn a debootstrap tree into a lab host: systemd boot, its own engine, SSH."""
    write(rootfs, "/etc/systemd/system/docker.service.d/10-lab.conf", DOCKER_DROPIN.format(socket_dir=LAB_SOCKET_DIR, extra=recipe.extra["docker_env"]))
    os.makedirs(os.path.join(rootfs, LAB_SOCKET_DIR.lstrip("/")), exist_ok=True)
    write(rootfs, "/etc/ssh/sshd_config.d/10-lab.conf", SSHD_CONFIG)
    # An empty machine-id makes systemd generate one per container at boot.
    write(rootfs, "/etc/machine-id", "", 0o444)
    for unit in MASKED_UNITS:
        link = os.path.join(rootfs, "etc/systemd/system", unit)
        if not os.path.lexists(link):
            os.symlink("/dev/null", link)
    for unit, target in (("docker.service", "multi-user.target"), ("ssh.service", "multi-user.target")):
        wants = os.path.join(rootfs, "etc/systemd/system", target + ".wants")
        os.makedirs(wants, exist_ok=True)
        link = os.path.join(wants, unit)
        if not os.path.lexists(link):
            os.symlink("/lib/systemd/system/" + unit, link)


def strip_caches(rootfs):
    for path in ("var/cache/apt/archives", "var/lib/apt/lists"):
        full = os.path.join(rootfs, path)
        for entry in os.listdir(full) if os.path.isdir(full) else []:
            entry_path = os.path.join(full, entry)
            if os.path.isfile(entry_path):
                os.unlink(entry_path)


def build_registry_rootfs(recipe, rootfs):
    """The registry binary Debian ships, its libraries, and the configuration registry:2 uses."""
    binary = "/usr/bin/docker-registry"
    if not os.path.exists(binary):
        raise LabError("%s is missing: install Debian's docker-registry package (python -m lab engine does)" % binary)
    files = {binary: "/bin/registry"}
    for line in run(["ldd", binary], "ldd %s" % binary).splitlines():
        match = re.search(r"(/\S+)\s+\(0x", line)
        if match:
            library = match.group(1)
            files[os.path.realpath(library)] = library
    for source, target in files.items():
        destination = os.path.join(rootfs, target.lstrip("/"))
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.copy2(source, destination)
    write(rootfs, "/etc/docker/registry/config.yml", recipe.extra["config"])
    for directory, mode in (("tmp", 0o1777), ("var/lib/registry", 0o755), ("etc/ssl/certs", 0o755)):
        os.makedirs(os.path.join(rootfs, directory), exist_ok=True)
        os.chmod(os.path.join(rootfs, directory), mode)
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt"):
        shutil.copy2("/etc/ssl/certs/ca-certificates.crt", os.path.join(rootfs, "etc/ssl/certs/ca-certificates.crt"))


def build_rootfs_tarball(recipe, tarball):
    workdir = tempfile.mkdtemp(prefix="fleet-lab-%s-" % recipe.name, dir=CACHE_DIR)
    rootfs = os.path.join(workdir, "rootfs")
    try:
        if recipe.name == "registry":
            os.makedirs(rootfs)
            build_registry_rootfs(recipe, rootfs)
        else:
            with timed("debootstrap %s for %s" % (recipe.suite, recipe.name)):
                debootstrap(recipe, rootfs)
            if recipe.name.startswith("host-"):
                configure_host(recipe, rootfs)
            strip_caches(rootfs)
        partial = tarball + ".partial"
        run(["tar", "--numeric-owner", "-C", rootfs, "-cf", partial, "."], "packing %s" % recipe.name)
        os.rename(partial, tarball)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def ensure_one(client, recipe):
    wanted = recipe_hash(recipe)
    if current_image(client, recipe, wanted) is not None:
        say("%s is up to date (recipe %s)" % (recipe.tags[0], wanted))
        return
    os.makedirs(CACHE_DIR, exist_ok=True)
    tarball = os.path.join(CACHE_DIR, "%s-%s.tar" % (recipe.name, wanted))
    if not os.path.exists(tarball):
        with timed("built the %s root filesystem" % recipe.name):
            build_rootfs_tarball(recipe, tarball)
    changes = list(recipe.changes) + ["LABEL %s=%s" % (RECIPE_LABEL, wanted)]
    repository, tag = recipe.tags[0].rsplit(":", 1)
    with timed("imported %s" % recipe.tags[0]):
        try:
            client.api.import_image_from_file(tarball, repository=repository, tag=tag, changes=changes)
        except docker.errors.APIError as exc:
            raise LabError("docker import of %s as %s failed: %s" % (tarball, recipe.tags[0], exc.explanation or exc)) from exc
    for extra_tag in recipe.tags[1:]:
        extra_repository, extra_version = extra_tag.rsplit(":", 1)
        client.images.get(recipe.tags[0]).tag(extra_repository, extra_version)
    if recipe.name == "registry":
        client.images.get(recipe.tags[0]).tag("fleet-lab/registry", registry_package_version().split("+")[0].split("-")[0])
    for stale in os.listdir(CACHE_DIR):
        if stale.startswith(recipe.name + "-") and stale.endswith(".tar") and stale != os.path.basename(tarball):
            os.unlink(os.path.join(CACHE_DIR, stale))


def ensure(names=None):
    """Build or reuse the named lab images (all of them by default)."""
    names = names or DEFAULT_ORDER
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise LabError("unknown lab image %s; known: %s" % (", ".join(unknown), ", ".join(DEFAULT_ORDER)))
    client = engine.client()
    for name in names:
        ensure_one(client, RECIPES[name])
