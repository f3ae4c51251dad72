"""Lab hosts: containers that boot systemd and run their own Docker Engine, on a private network."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

import docker
from docker.types import Mount

from . import engine
from .common import STATE_DIR, LabError, say

DEFAULT_PREFIX = "fleet-lab"
NETWORK = "fleet-lab"
HOST_LABEL = "fleet-lab.prefix"

# Every capability this machine's bounding set has that Docker 20.10 knows (it predates BPF,
# PERFMON and CHECKPOINT_RESTORE). --privileged fails here because the sandbox lacks
# CAP_SYS_RESOURCE, so the capabilities are listed one by one without it.
CAPABILITIES = [
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "CHOWN",
    "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
    "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT",
    "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_TIME", "SYS_TTY_CONFIG", "SYSLOG",
    "WAKE_ALARM",
]


@dataclass
class LabHost:
    name: str
    distro: str
    ip: str
    socket_dir: str
    engine_version: str = ""

    @property
    def docker_host(self):
        """The inner engine's address, reachable from this machine."""
        return "unix://%s/docker.sock" % self.socket_dir


def socket_dir(name):
    return os.path.join(STATE_DIR, "hosts", name)


def ensure_network(client):
    if not client.networks.list(names=[NETWORK]):
        client.networks.create(NETWORK, driver="bridge", labels={HOST_LABEL: "network"})


def run_host(client, name, distro, prefix):
    directory = socket_dir(name)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    mounts = [
        Mount("/sys/fs/cgroup", "/sys/fs/cgroup", type="bind", read_only=False),
        Mount("/lab", directory, type="bind"),
        Mount("/var/lib/docker", None, type="volume"),
    ]
    return client.containers.run(
        "fleet-lab/host:%s" % distro,
        name=name,
        hostname=name,
        detach=True,
        stop_signal="SIGRTMIN+3",
        cap_add=CAPABILITIES,
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        cgroupns="host",
        tmpfs={"/run": "", "/run/lock": "", "/tmp": ""},
        mounts=mounts,
        network=NETWORK,
        labels={HOST_LABEL: prefix, "fleet-lab.distro": distro},
    )


def wait_for_inner_engine(host, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(os.path.join(host.socket_dir, "docker.sock")) and engine.answers(host.docker_host):
            host.engine_version = engine.client(host.docker_host).version()["Version"]
            return host
        time.sleep(1)
    raise LabError("the Docker Engine inside lab host %s did not answer on %s within %ds (try: docker exec %s journalctl -u docker)"
                   % (host.name, host.docker_host, timeout, host.name))


def record(container):
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    ip = networks.get(NETWORK, {}).get("IPAddress", "")
    return LabHost(container.name, container.labels.get("fleet-lab.distro", ""), ip, socket_dir(container.name))


def distros_for(count, distro):
    if distro == "mixed":
        return ["bookworm" if index % 2 == 0 else "trixie" for index in range(count)]
    return [distro] * count


def start(count=2, prefix=DEFAULT_PREFIX, distro="mixed"):
    """Start `count` lab hosts named <prefix>-1..N (replacing any with those names); return them ready."""
    client = engine.client()
    stop(prefix, quiet=True)
    ensure_network(client)
    started = time.monotonic()
    containers = [run_host(client, "%s-%d" % (prefix, index + 1), flavour, prefix) for index, flavour in enumerate(distros_for(count, distro))]
    ready = [wait_for_inner_engine(record(container)) for container in containers]
    say("%d lab host(s) ready in %.1fs" % (len(ready), time.monotonic() - started))
    return ready


def containers_of(client, prefix):
    return client.containers.list(all=True, filters={"label": "%s=%s" % (HOST_LABEL, prefix)})


def status(prefix=DEFAULT_PREFIX):
    hosts = []
    for container in containers_of(engine.client(), prefix):
        host = record(container)
        if engine.answers(host.docker_host):
            host.engine_version = engine.client(host.docker_host).version()["Version"]
        hosts.append(host)
    return hosts


def stop(prefix=DEFAULT_PREFIX, quiet=False):
    client = engine.client()
    removed = 0
    for container in containers_of(client, prefix):
        container.remove(force=True, v=True)
        shutil.rmtree(socket_dir(container.name), ignore_errors=True)
        removed += 1
    for network in client.networks.list(names=[NETWORK]):
        network.reload()
        if not network.attrs.get("Containers"):
            try:
                network.remove()
            except docker.errors.APIError:
                pass  # another prefix's host joined it meanwhile; it stays
    if not quiet:
        say("removed %d lab host(s) with prefix %s" % (removed, prefix))


def print_table(hosts):
    print("%-22s %-9s %-15s %-16s %s" % ("NAME", "DISTRO", "IP", "DOCKER", "DOCKER_HOST"))
    for host in hosts:
        print("%-22s %-9s %-15s %-16s %s" % (host.name, host.distro, host.ip, host.engine_version or "-", host.docker_host))
