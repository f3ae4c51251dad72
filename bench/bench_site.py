"""Site bring-up benchmark: bytes that leave the controller, wall time, on a shaped uplink, for M lab hosts.

For each shape of the controller's uplink (--shapes), each M (--counts) and each method (--methods)
it starts M Docker hosts (bookworm and trixie alternating) plus one registry host with the lab, on
the bench's OWN bridge network (fi-g-lab; never the shared fleet-lab network), reached over SSH,
and measures on fresh hosts:

  naive      `docker save` of all the bundle's images into one tarball, `zstd -3` (made once,
             untimed, like the bundle), then for each host (5 at a time, like Ansible's default
             forks): scp it, `zstd -dc | docker load` there
  copy       playbooks/site.yml with site_images_strategy=copy
  registry   playbooks/site.yml with site_images_strategy=registry (the default)
  rerun      the same site run again, nothing changed (copy and registry)
  wire       (only when asked) scp of the naive tarball to one host: the throughput the uplink gives

Images (--images): `single` is one image of about --size-mb MB (the lab base plus four layers of
random data); `family` is bench_size.py's K images (--family-count) sharing one base (the lab base
plus --base-mb MB of data that compresses like real binaries) with 1-5 MB top layers. The bundle
(playbooks/bundle.yml, --format 1 or 2: bundle_format_version) also carries the registry image.

Controller egress is read from the bench bridge's interface counters
(/sys/class/net/br-<network id>/statistics/tx_bytes): traffic from this machine to the lab
containers leaves through that bridge; traffic between containers (hosts pulling from the registry
host) is forwarded between the bridge's ports and is not counted there.

Shaping (--shapes none 1gbit 100mbit): a `tc` token bucket (tbf) on the bench bridge's egress, which
carries exactly the controller's traffic to the lab (host-to-host traffic is not shaped). The qdisc
is removed after every measurement and on any exit (exception, Ctrl-C, SIGTERM).

Peak RSS (--rss): a sampler in each lab host reads VmHWM of every python process there every 0.1 s;
the column is the largest seen on any host during the run (module runs on the hosts).

  .venv/bin/python bench/bench_site.py --counts 1 --methods naive registry --shapes none --size-mb 200
  .venv/bin/python bench/bench_site.py --images family --format 2 --shapes none 1gbit 100mbit --rss
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, REPO)
sys.path.insert(0, BENCH)

from lab import engine, hosts, images  # noqa: E402  (the lab lives at the repository root)

WORK = os.path.join(REPO, ".build", "bench-site")
PREFIX = "fi-g-site"
# The bench's own network: its bridge carries only this bench's traffic (tx_bytes is ours alone) and
# shaping it slows nobody else's lab hosts. lab.hosts reads its NETWORK global at every call.
NETWORK = "fi-g-lab"
IMAGE_REPOSITORY = "fi-g-bench/site"
REGISTRY_IMAGE = "registry:2"
SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]
# tbf: rate, and a bucket large enough for the rate at this kernel's timer (rate / 250 Hz at least).
SHAPES = {"none": None, "1gbit": ("1gbit", "2mb"), "100mbit": ("100mbit", "1mb")}
TARGETS = [
    "registry first run, unshaped: M = 1 <= 1.5 x naive time, M = 8 <= 1.0 x naive time",
    "registry first run at 100 Mbit/s, M = 8: <= 0.2 x naive time",
    "registry: controller egress <= 1.05 x the bundle's unique image bytes, every M",
    "reruns: <= 15 % of the first run, no image byte moved; peak module RSS <= 150 MB",
]


def say(message):
    print("bench: %s" % message, flush=True)


def run(command, **kwargs):
    proc = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise SystemExit("bench: %s failed (exit %d)\n%s%s" % (" ".join(command[:6]), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc.stdout


# --- images and bundles -------------------------------------------------------------------------

def build_image(size_mb):
    """An image of about `size_mb` MB: the lab's base plus four layers of incompressible data."""
    client = engine.client()
    image = "%s:%dmb" % (IMAGE_REPOSITORY, size_mb)
    layer_mb = max(1, (size_mb - 117) // 4)
    steps = "\n".join("RUN head -c %dM /dev/urandom > /blob%d" % (layer_mb, index) for index in range(4))
    dockerfile = "FROM fleet-lab/base:bookworm\n%s\nLABEL fleet.bench.size_mb=%d\n" % (steps, size_mb)
    try:
        if client.images.get(image).labels.get("fleet.bench.size_mb") == str(size_mb):
            return [image]
    except Exception:  # not built yet
        pass
    directory = tempfile.mkdtemp(prefix="fi-g-site-")
    with open(os.path.join(directory, "Dockerfile"), "w") as handle:
        handle.write(dockerfile)
    say("building %s (~%d MB)" % (image, size_mb))
    try:
        client.images.build(path=directory, tag=image, rm=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return [image]


def bench_images(args):
    if args.images == "single":
        return build_image(args.size_mb)
    from bench_size import build_family

    return build_family(args.family_count, args.base_mb, 5)[1]  # 5: bench_size.py's default new layer (built, not used here)


def ansible_env():
    # ansible-playbook is found beside the interpreter running the bench (.venv/bin), activated or not.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return dict(os.environ, PATH=path, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".build", "collections"), ANSIBLE_HOST_KEY_CHECKING="False",
                ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_PIPELINING="True")


def make_bundle(bundle, references, format_version):
    with open(os.path.join(REPO, "playbooks", "bundle.yml")) as handle:
        if format_version != 1 and "bundle_format_version" not in handle.read():
            raise SystemExit("bench: playbooks/bundle.yml of this checkout has no bundle_format_version: --format %d needs the v2 writer"
                             % format_version)
    say("saving the bundle (format %d) into %s" % (format_version, bundle))
    extra = {"bundle": bundle, "bundle_images": references, "bundle_pull": "never", "bundle_format_version": format_version,
             "bundle_wheel_find_links": os.path.join(REPO, ".cache", "wheels")}
    run(["ansible-playbook", "fleet.images.bundle", "-e", json.dumps(extra)], env=ansible_env())
    with open(os.path.join(bundle, "bundle.json")) as handle:
        manifest = json.load(handle)
    if manifest.get("version", 1) != format_version:
        raise SystemExit("bench: %s is a version %s bundle, not %d" % (bundle, manifest.get("version"), format_version))
    return manifest


def tree_size(path):
    total = 0
    for directory, _subdirs, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(directory, name)) for name in files)
    return total


def image_bytes(bundle, manifest):
    """The bundle's image bytes: its tarballs (v1), or its blobs, each once (v2)."""
    if manifest.get("version", 1) >= 2:
        return tree_size(os.path.join(bundle, "blobs"))
    return sum(entry["size"] for entry in manifest["images"])


def naive_tarball(references):
    path = os.path.join(WORK, "naive.tar.zst")
    say("naive: docker save %s | zstd -3" % " ".join(references))
    run(["bash", "-o", "pipefail", "-c", "docker save %s | zstd -q -3 -T0 -f -o %s" % (" ".join(references), path)])
    return path


# --- lab hosts ----------------------------------------------------------------------------------

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


# --- the bridge: counters and shaping -----------------------------------------------------------

def bridge():
    return "br-%s" % engine.client().networks.get(NETWORK).id[:12]


def bridge_tx_bytes():
    with open("/sys/class/net/%s/statistics/tx_bytes" % bridge()) as handle:
        return int(handle.read())


def shape(name):
    """Put the tbf qdisc of `name` on the bench bridge (nothing for "none")."""
    if SHAPES[name] is None:
        return
    rate, burst = SHAPES[name]
    run(["tc", "qdisc", "replace", "dev", bridge(), "root", "tbf", "rate", rate, "burst", burst, "latency", "50ms"])


def unshape():
    """Remove any root qdisc from the bench bridge (quietly: the bridge may be gone already)."""
    try:
        device = bridge()
    except Exception:  # the network is gone, and its qdisc with it
        return
    subprocess.run(["tc", "qdisc", "del", "dev", device, "root"], capture_output=True, check=False)


def on_signal(signum, _frame):
    """SIGTERM/SIGHUP: unshape at once (running transfers finish unshaped), then unwind like Ctrl-C."""
    unshape()
    raise KeyboardInterrupt("signal %d" % signum)


# --- peak RSS on the hosts ----------------------------------------------------------------------

RSS_SAMPLER = r"""
import json, os, time
me, best = os.getpid(), {"rss": 0, "pid": 0}
while not os.path.exists("/tmp/fi-g-rss.stop"):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open("/proc/%s/status" % pid) as handle:
                fields = dict(line.split(":", 1) for line in handle.read().splitlines() if ":" in line)
        except OSError:
            continue
        if fields.get("Name", "").strip().startswith("python") and "VmHWM" in fields:
            rss = int(fields["VmHWM"].split()[0]) * 1024
            if rss > best["rss"]:
                best = {"rss": rss, "pid": int(pid)}
                with open("/tmp/fi-g-rss.json", "w") as handle:
                    json.dump(best, handle)
    time.sleep(0.1)
"""


def rss_start(lab_hosts):
    for host in lab_hosts:
        container = engine.client().containers.get(host.name)
        container.exec_run(["rm", "-f", "/tmp/fi-g-rss.stop", "/tmp/fi-g-rss.json"])
        container.exec_run(["python3", "-c", RSS_SAMPLER], detach=True)


def rss_stop(lab_hosts):
    """Stop the samplers; return the largest peak RSS seen (bytes)."""
    peak = 0
    for host in lab_hosts:
        container = engine.client().containers.get(host.name)
        container.exec_run(["touch", "/tmp/fi-g-rss.stop"])
        result = container.exec_run(["cat", "/tmp/fi-g-rss.json"])
        if result.exit_code == 0:
            peak = max(peak, json.loads(result.output)["rss"])
    return peak


# --- the methods --------------------------------------------------------------------------------

def naive(docker_hosts, tarball, key):
    def one(host):
        target = "root@%s" % host.ip
        remote = "/var/tmp/" + os.path.basename(tarball)
        run(["scp", "-q", "-i", key] + SSH_OPTIONS + [tarball, "%s:%s" % (target, remote)])
        run(["ssh", "-i", key] + SSH_OPTIONS + [target, "zstd -dc %s | docker load && rm -f %s" % (remote, remote)])
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(one, docker_hosts))


def wire(host, tarball, key):
    """scp of the naive tarball to one host, nothing else: what the uplink (and ssh's CPU) gives."""
    run(["scp", "-q", "-i", key] + SSH_OPTIONS + [tarball, "root@%s:/var/tmp/fi-g-wire" % host.ip])
    run(["ssh", "-i", key] + SSH_OPTIONS + ["root@%s" % host.ip, "rm -f /var/tmp/fi-g-wire"])


def site(inventory_path, bundle, strategy):
    return run(["ansible-playbook", "fleet.images.site", "-i", inventory_path, "-f", "8", "-e", "bundle=%s" % bundle,
                "-e", "site_images_strategy=%s" % strategy], env=ansible_env())


def measured(action, lab_hosts, rss):
    """(egress bytes, seconds, peak RSS or None) of action()."""
    if rss:
        rss_start(lab_hosts)
    before, start = bridge_tx_bytes(), time.monotonic()
    action()
    egress, seconds = bridge_tx_bytes() - before, time.monotonic() - start
    return egress, seconds, rss_stop(lab_hosts) if rss else None


def one_row(args, shape_name, count, method, inputs):
    """Fresh hosts, the shape, the method (and its rerun); returns the row's dict."""
    registry, docker_hosts = start_hosts(count, inputs["key"])
    path = inventory(registry, docker_hosts, inputs["key"])
    lab_hosts = [registry] + docker_hosts
    row = {"shape": shape_name, "M": count, "method": method}
    say("%s M=%d %s: running" % (shape_name, count, method))
    try:
        shape(shape_name)
        if method == "wire":
            row["first"] = measured(lambda: wire(docker_hosts[0], inputs["naive"], inputs["key"]), lab_hosts, False)
        elif method == "naive":
            row["first"] = measured(lambda: naive(docker_hosts, inputs["naive"], inputs["key"]), lab_hosts, args.rss)
        else:
            row["first"] = measured(lambda: site(path, inputs["bundle"], method), lab_hosts, args.rss)
            row["rerun"] = measured(lambda: site(path, inputs["bundle"], method), lab_hosts, args.rss)
    finally:
        unshape()
    rerun = "; rerun %.2f MB in %.1f s" % (row["rerun"][0] / 1e6, row["rerun"][1]) if "rerun" in row else ""
    say("%s M=%d %s: %.1f MB in %.1f s%s" % (shape_name, count, method, row["first"][0] / 1e6, row["first"][1], rerun))
    return row


# --- the table ----------------------------------------------------------------------------------

def ratio(value, reference, digits=2):
    return ("%%.%df" % digits) % (value / reference) if reference else "–"


def print_table(args, inputs, rows):
    client = engine.client()
    print()
    naive_size = " (naive tarball %.1f MB)" % (os.path.getsize(inputs["naive"]) / 1e6) if inputs["naive"] else ""
    print("Site bench, %s, bundle format %d, images %s: %s; bundle image bytes %.1f MB%s; Docker %s on the controller, %d CPU"
          % (datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), args.format, args.images,
             ", ".join(inputs["references"]), inputs["size"] / 1e6, naive_size, client.version()["Version"], os.cpu_count()))
    print()
    print("| shape | M | method | egress MB | x bundle | x naive egress | time s | x naive time | rerun egress MB | rerun s (% of first) | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    naive_of = {(row["shape"], row["M"]): row["first"] for row in rows if row["method"] == "naive"}
    for row in rows:
        egress, seconds, peak = row["first"]
        reference = naive_of.get((row["shape"], row["M"]), (0, 0, None))
        rerun = "– | –"
        if "rerun" in row:
            again = row["rerun"]
            rerun = "%.1f | %.1f (%.0f %%)" % (again[0] / 1e6, again[1], 100 * again[1] / seconds)
            peak = max(peak or 0, again[2] or 0) or None
        print("| %s | %d | %s | %.1f | %s | %s | %.1f | %s | %s | %s |"
              % (row["shape"], row["M"], row["method"], egress / 1e6, ratio(egress, inputs["size"]), ratio(egress, reference[0]),
                 seconds, ratio(seconds, reference[1]), rerun, "%.1f" % (peak / 1e6) if peak else "–"))
    print()
    print("Targets (issue 13): " + "; ".join(TARGETS))


def prepare(args):
    os.makedirs(WORK, exist_ok=True)
    engine.ensure()
    images.ensure(["base", "registry", "host-bookworm", "host-trixie"])
    references = bench_images(args)
    bundle = os.path.join(WORK, "bundle-%s-v%d" % (args.images, args.format))
    manifest = make_bundle(bundle, references, args.format)
    size = image_bytes(bundle, manifest)
    say("bundle: %d image(s), %.1f MB of image bytes" % (len(manifest["images"]), size / 1e6))
    naive_file = naive_tarball(references + [REGISTRY_IMAGE]) if {"naive", "wire"} & set(args.methods) else None
    return {"references": references, "bundle": bundle, "size": size, "naive": naive_file, "key": ssh_key()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", choices=["single", "family"], default="single")
    parser.add_argument("--size-mb", type=int, default=500, help="single: the image's size (default 500)")
    parser.add_argument("--family-count", type=int, default=10, help="family: K images (default 10)")
    parser.add_argument("--base-mb", type=int, default=100, help="family: MB of data in the shared base's own layer (default 100)")
    parser.add_argument("--format", type=int, choices=[1, 2], default=1, help="bundle format version (bundle_format_version)")
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--methods", nargs="+", default=["naive", "copy", "registry"], choices=["wire", "naive", "copy", "registry"],
                        help="wire: only scp the naive tarball to one host (the uplink's throughput); default naive copy registry")
    parser.add_argument("--shapes", nargs="+", default=["none"], choices=list(SHAPES))
    parser.add_argument("--rss", action="store_true", help="sample the peak RSS of python processes on the lab hosts")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--cleanup", action="store_true", help="only remove what a killed run left: the qdisc, the hosts, the network")
    args = parser.parse_args()
    hosts.NETWORK = NETWORK
    if args.cleanup:
        unshape()
        hosts.stop(PREFIX)
        return
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        run_all(args)
    except KeyboardInterrupt:
        raise SystemExit("bench: interrupted; the bench bridge's qdisc and the lab hosts (%s-*) are removed" % PREFIX)


def run_all(args):
    inputs = prepare(args)
    rows = []
    try:
        for shape_name in args.shapes:
            for count in args.counts:
                for method in args.methods:
                    rows.append(one_row(args, shape_name, count, method, inputs))
    finally:
        unshape()
        hosts.stop(PREFIX, quiet=True)
        if args.json:
            with open(args.json, "w") as handle:
                json.dump({"inputs": {k: v for k, v in inputs.items() if k != "key"}, "rows": rows}, handle, indent=1)
    print_table(args, inputs, rows)


if __name__ == "__main__":
    main()
