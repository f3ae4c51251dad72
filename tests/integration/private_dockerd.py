"""A private Docker Engine that a fault test may kill: never the shared one at /var/run/docker.sock.

Its own data root, exec root, pid file, unix socket, containerd namespace, its own bridge and no
iptables rules. NOT --bridge=none: with it dockerd deletes the host's docker0 at start (libnetwork's
removeDefaultBridgeInterface), which breaks the shared engine's containers. Its bridge holds an
address of TEST-NET-1 (192.0.2.0/24, RFC 5737), which nothing else uses. The vfs driver works on any
file system, tmpfs included. Everything lives under one /tmp/fi-bytes-* directory (short: a unix
socket path has a 108-byte limit); stop() unmounts what dockerd mounted there, removes it and the bridge.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

import docker


class PrivateEngine:
    def __init__(self, data_root=None):
        # Hex only: dockerd derives a containerd namespace from this name, which refuses "_" at an end or twice.
        self.directory = os.path.join(tempfile.gettempdir(), "fi-bytes-dockerd-" + secrets.token_hex(4))
        os.mkdir(self.directory, 0o700)
        self.data_root = data_root or os.path.join(self.directory, "data")
        self.docker_host = "unix://%s/sock" % self.directory
        name = os.path.basename(self.directory)
        self.bridge = "fib-%s" % name.rsplit("-", 1)[-1][:8]
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", "192.0.2.%d/30" % (4 * random.randrange(64) + 1), "dev", self.bridge], check=True)
        self.log_path = os.path.join(self.directory, "log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["dockerd", "--data-root", self.data_root, "--exec-root", os.path.join(self.directory, "exec"),
                 "--pidfile", os.path.join(self.directory, "pid"), "-H", self.docker_host, "--bridge", self.bridge,
                 "--iptables=false", "--ip-masq=false", "--storage-driver=vfs",
                 "--containerd-namespace", name, "--containerd-plugins-namespace", name + "-plugins"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait()
        except BaseException:
            self.stop()
            raise
        self.client = docker.DockerClient(base_url=self.docker_host, version="auto", timeout=60)

    def _wait(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                docker.APIClient(base_url=self.docker_host, version="auto", timeout=2).ping()
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.1)
        with open(self.log_path) as log:
            raise RuntimeError("the private dockerd did not start:\n" + log.read()[-3000:])

    def kill(self):
        """SIGKILL the engine (what a crash or an OOM kill does) and wait until it is gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        # dockerd bind-mounts its data root (and may leave more) where a killed one never unmounts it
        with open("/proc/self/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(self.directory + "/")
                      or line.split()[1] == self.data_root]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        subprocess.run(["ip", "link", "del", self.bridge], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)
