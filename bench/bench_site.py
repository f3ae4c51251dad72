"""Site bring-up benchmark: bytes that leave the controller and wall time, for M lab hosts.

For each M (default 1, 4, 8) it starts M Docker hosts plus one registry host with the lab, reached
over SSH on the lab's bridge network, and measures on fresh hosts:

  naive      scp each tarball to each host, then `zstd -dc | docker load` there (5 hosts at a time,
             like Ansible's default forks)
  copy       playbooks/site.yml with site_images_strategy=copy
  registry   playbooks/site.yml with site_images_strategy=registry (the default)
  rerun      playbooks/site.yml again, nothing changed (after the registry run)

Controller egress is read from the lab bridge's interface counters
(/sys/class/net/br-<network id>/statistics/tx_bytes): traffic from this machine to the lab
containers leaves through that bridge; traffic between containers is forwarded between the
bridge's ports and is not counted there.

  python3 bench/bench_site.py                       # ~500 MB bundle, M = 1, 4, 8
  python3 bench/bench_site.py --size-mb 100 --counts 1 4
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from lab import engine, hosts, images  # noqa: E402  (the lab lives at the repository root)

WORK = os.path.join(REPO, ".build", "bench-site")
PREFIX = "bench-site"
IMAGE = "fleet-bench/site:1"
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]


def say(message):
    print("bench: %s" % message, flush=True)


def run(command, **kwargs):
    proc = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise SystemExit("bench: %s failed (exit %d)\n%s%s" % (" ".join(command[:6]), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc.stdout


def build_image(size_mb):
    """An image of about `size_mb` MB: the lab's base plus four layers of incompressible data."""
    client = engine.client()
    layer_mb = max(1, (size_mb - 117) // 4)
    steps = "\n".join("RUN head -c %dM /dev/urandom > /blob%d" % (layer_mb, index) for index in range(4))
    dockerfile = "FROM fleet-lab/base:bookworm\n%s\nLABEL fleet.bench.size_mb=%d\n" % (steps, size_mb)
    directory = tempfile.mkdtemp(prefix="bench-site-")
    with open(os.path.join(directory, "Dockerfile"), "w") as handle:
        handle.write(dockerfile)
    try:
        current = client.images.get(IMAGE)
        if current.labels.get("fleet.bench.size_mb") == str(size_mb):
            return
    except Exception:  # not built yet
        pass
    say("building %s (~%d MB)" % (IMAGE, size_mb))
    client.images.build(path=directory, tag=IMAGE, rm=True)


def ansible_env():
    # ansible-playbook is found beside the interpreter running the bench (.venv/bin), activated or not.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return dict(os.environ, PATH=path, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build", "collections"), ANSIBLE_HOST_KEY_CHECKING="False",
                ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_PIPELINING="True")


def make_bundle(bundle):
    say("saving the bundle into %s" % bundle)
    extra = {"bundle": bundle, "bundle_images": [IMAGE], "bundle_pull": "never",
             "bundle_wheel_find_links": os.path.join(REPO, ".cache", "wheels")}
    run(["ansible-playbook", "fleet.images.bundle", "-e", json.dumps(extra)], env=ansible_env())


def bundle_bytes(bundle):
    with open(os.path.join(bundle, "bundle.json")) as handle:
        manifest = json.load(handle)
    return sum(entry["size"] for entry in manifest["images"]), [entry["file"] for entry in manifest["images"]]


def ssh_key():
    key = os.path.join(WORK, "id_ed25519")
    if not os.path.exists(key):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    return key


def start_hosts(count, key):
    """count Docker hosts + 1 registry host, fresh; returns (registry, [docker hosts])."""
    started = hosts.start(count + 1, PREFIX, "mixed")
    client = engine.client()
    with open(key + ".pub") as handle:
        public = handle.read().strip()
    for host in started:
        container = client.containers.get(host.name)
        container.exec_run(["sh", "-c", "mkdir -p /root/.ssh && echo '%s' >> /root/.ssh/authorized_keys && chmod 700 /root/.ssh" % public])
        for _attempt in range(30):
            if container.exec_run(["systemctl", "is-active", "ssh.service"]).exit_code == 0:
                break
            time.sleep(1)
    return started[0], started[1:]


def inventory(registry, docker_hosts, key):
    path = os.path.join(WORK, "inventory.ini")
    # As docs/inventory-example/group_vars/all.yml sets them (pipelining is in ansible_env()).
    common = ("ansible_user=root ansible_python_interpreter=/usr/bin/python3 ansible_ssh_private_key_file=%s ansible_ssh_common_args='%s'"
              % (key, " ".join(SSH_OPTIONS)))
    lines = ["[registry]", "%s ansible_host=%s %s" % (registry.name, registry.ip, common), "", "[docker_hosts]"]
    lines += ["%s ansible_host=%s %s" % (host.name, host.ip, common) for host in docker_hosts]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def bridge_tx_bytes():
    network = engine.client().networks.get(hosts.NETWORK)
    with open("/sys/class/net/br-%s/statistics/tx_bytes" % network.id[:12]) as handle:
        return int(handle.read())


def measured(action):
    before, start = bridge_tx_bytes(), time.monotonic()
    action()
    return bridge_tx_bytes() - before, time.monotonic() - start


def naive(docker_hosts, bundle, files, key):
    def one(host):
        target = "root@%s" % host.ip
        for name in files:
            run(["scp", "-q", "-i", key] + SSH_OPTIONS + [os.path.join(bundle, name), "%s:/var/tmp/" % target])
            remote = "/var/tmp/" + os.path.basename(name)
            run(["ssh", "-i", key] + SSH_OPTIONS + [target, "zstd -dc %s | docker load && rm -f %s" % (remote, remote)])
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(one, docker_hosts))


ROLE_ONLY_PLAYBOOK = """- name: Get the bundle's images onto every Docker host (offline_images role alone)
  hosts: docker_hosts
  gather_facts: false
  roles:
    - role: fleet.images.offline_images
      vars:
        offline_images_bundle: "{{ bundle }}"
        offline_images_strategy: "{{ site_images_strategy }}"
"""


def site(inventory_path, bundle, strategy, role_only=False):
    playbook = "fleet.images.site"
    if role_only:
        playbook = os.path.join(WORK, "role_only.yml")
        with open(playbook, "w") as handle:
            handle.write(ROLE_ONLY_PLAYBOOK)
    return run(["ansible-playbook", playbook, "-i", inventory_path, "-f", "8", "-e", "bundle=%s" % bundle,
                "-e", "site_images_strategy=%s" % strategy], env=ansible_env())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--methods", nargs="+", default=["naive", "copy", "registry"], choices=["naive", "copy", "registry"])
    parser.add_argument("--role-only", action="store_true",
                        help="run the offline_images role alone instead of playbooks/site.yml (copy strategy only: no registry, no daemon)")
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    engine.ensure()
    images.ensure(["base", "registry", "host-bookworm", "host-trixie"])
    build_image(args.size_mb)
    bundle = os.path.join(WORK, "bundle-%d" % args.size_mb)
    make_bundle(bundle)
    size, files = bundle_bytes(bundle)
    say("bundle: %d image tarball(s), %.1f MB" % (len(files), size / 1e6))
    key = ssh_key()
    rows = []
    try:
        for count in args.counts:
            for method in args.methods:
                registry, docker_hosts = start_hosts(count, key)
                path = inventory(registry, docker_hosts, key)
                say("M=%d %s: running" % (count, method))
                if method == "naive":
                    egress, seconds = measured(lambda: naive(docker_hosts, bundle, files, key))
                    rows.append((count, method, egress, seconds))
                    continue
                egress, seconds = measured(lambda: site(path, bundle, method, args.role_only))
                rows.append((count, method, egress, seconds))
                again_egress, again_seconds = measured(lambda: site(path, bundle, method, args.role_only))
                rows.append((count, method + " rerun", again_egress, again_seconds))
                say("M=%d %s: %.1f MB in %.1fs; rerun %.2f MB in %.1fs (%.0f%%)"
                    % (count, method, egress / 1e6, seconds, again_egress / 1e6, again_seconds, 100 * again_seconds / seconds))
    finally:
        hosts.stop(PREFIX, quiet=True)
    print()
    print("bundle: %.1f MB (%d tarballs)" % (size / 1e6, len(files)))
    print("%-3s %-15s %14s %12s %9s" % ("M", "method", "egress MB", "x bundle", "time s"))
    for count, method, egress, seconds in rows:
        print("%-3d %-15s %14.1f %12.2f %9.1f" % (count, method, egress / 1e6, egress / size, seconds))


if __name__ == "__main__":
    main()
