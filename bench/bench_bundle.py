"""image_save / image_load against the commands users type instead, printed as ratios in one run.

Builds (offline, once) a synthetic image of about 500 MB whose layers compress like real ones:
about 70 % copies of the lab's Debian base layer, each with its bytes permuted (real binaries and
text, so LZ matches and byte statistics stay those of real files, yet every copy is distinct), and
30 % random bytes (already compressed files). Or measures an existing image (--image). Then, on
this machine's Docker Engine, with warm page cache for both sides:

  save none   image_save compression=none      vs  docker save -o f IMG && sha256sum f
  save zstd   image_save compression=zstd      vs  docker save IMG | gzip > f          (time and size)
  load        image_load of that bundle        vs  sha256sum -c SHA256SUMS && docker load -i f
  present     image_load when the engine has the image already (the whole bundle)
  peak RSS    of every module run (wait4 of the module's process, forked by a small helper)

Modules run as Ansible runs them (the module file, its arguments in a JSON file), so times include
the interpreter's start. Each measurement runs --repeat times and the fastest run counts.

  python3 bench/bench_bundle.py                  # ~500 MB, 2 repetitions
  python3 bench/bench_bundle.py --size-mb 200 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".build", "collections")
sys.path.insert(0, REPO)
sys.path.insert(0, COLLECTIONS)

from lab import engine  # noqa: E402  (the lab lives at the repository root)
from tests.conftest import ensure_collection_link  # noqa: E402

IMAGE_REPOSITORY = "fleet-bench/bundle"
BLOCK = 1024 * 1024
# Bump when the data recipe changes, so an old image is not reused.
RECIPE = 4
BASE_IMAGE = "fleet-lab/base:bookworm"

TARGETS = {
    "save none": "<= 1.00 x docker save -o f && sha256sum f",
    "save zstd time": ">= 3.00 x faster than docker save | gzip",
    "save zstd size": "<= 1.05 x gzip's size",
    "load": "<= 1.00 x sha256sum -c SHA256SUMS && docker load -i f",
    "present": "< 2 s for the whole bundle",
    "peak RSS": "< 150 MB for either module",
}


def say(message):
    print("bench: %s" % message, flush=True)


def run(command, **kwargs):
    proc = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise SystemExit("bench: %s failed (exit %d)\n%s%s" % (" ".join(command)[:200], proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc.stdout


# --- the synthetic image ----------------------------------------------------------------------

def base_layer_bytes(client):
    """The root file system layer of fleet-lab/base:bookworm: real Debian binaries, libraries and text."""
    archive = tarfile.open(fileobj=StreamReader(client.api.get_image(BASE_IMAGE, chunk_size=BLOCK)), mode="r|")
    for member in archive:
        if member.name.endswith("layer.tar") or (member.name.startswith("blobs/") and member.size > 10 * BLOCK):
            return archive.extractfile(member).read()
    raise SystemExit("bench: no layer found in %s" % BASE_IMAGE)


class StreamReader:
    """A read() over an iterator of chunks, for tarfile's stream mode."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._buffer = b""

    def read(self, size=-1):
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def write_layers(context, client, size_mb, rng):
    """Layer files totalling about `size_mb` MB, about 70 % real content and 30 % random.

    Real content: copies of the base image's file system layer, each with its bytes mapped
    through a different byte permutation. A permutation keeps every LZ match and the shape of
    the byte distribution, so gzip and zstd compress each copy as they compress the original,
    while the copies differ (distinct layers, nothing for the engine to share).
    Random content stands for the already compressed files (archives, media) of real layers.
    """
    real = base_layer_bytes(client)
    target = size_mb * BLOCK
    names = []
    written = 0
    copy = 0
    while written + len(real) <= target * 0.72:
        table = list(range(256))
        rng.shuffle(table)
        name = "real%d.bin" % copy
        with open(os.path.join(context, name), "wb") as handle:
            handle.write(real.translate(bytes(table)))
        names.append(name)
        written += len(real)
        copy += 1
    name = "random.bin"
    with open(os.path.join(context, name), "wb") as handle:
        while written < target:
            handle.write(os.urandom(BLOCK))
            written += BLOCK
    names.append(name)
    return names


def build_image(client, size_mb):
    tag = "%s:%dmb-r%d" % (IMAGE_REPOSITORY, size_mb, RECIPE)
    try:
        client.images.get(tag)
        say("reusing %s" % tag)
        return tag
    except Exception:  # not built yet
        pass
    context = tempfile.mkdtemp(prefix="bench-bundle-build-", dir="/var/tmp")
    started = time.monotonic()
    try:
        names = write_layers(context, client, size_mb, random.Random(RECIPE))
        lines = ["FROM scratch"] + ["COPY %s /data/%s" % (name, name) for name in names]
        lines.append("LABEL fleet.bench.size_mb=%d fleet.bench.recipe=%d" % (size_mb, RECIPE))
        with open(os.path.join(context, "Dockerfile"), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        run(["docker", "build", "-q", "-t", tag, context])
    finally:
        shutil.rmtree(context, ignore_errors=True)
    say("built %s in %.0fs" % (tag, time.monotonic() - started))
    return tag


# --- measuring ----------------------------------------------------------------------------------

def timed_shell(script, cwd=None):
    started = time.monotonic()
    run(["bash", "-o", "pipefail", "-c", script], cwd=cwd)
    return time.monotonic() - started


# A fresh, small process forks the module and reports its peak RSS. Measuring the module as our
# own child would not do: a child's peak RSS starts at its parent's size when it is forked, and
# this process holds hundreds of MB after building the image.
PEAK_RSS_HELPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_pid, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as handle:
    handle.write(str(usage.ru_maxrss * 1024))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_module(name, params):
    """Run a module as Ansible does; return (seconds, peak RSS in bytes, result)."""
    args_path = os.path.join(COLLECTIONS, "args-bench-%s-%d.json" % (name, os.getpid()))
    with open(args_path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": params}, handle)
    module = os.path.join(COLLECTIONS, "ansible_collections", "fleet", "images", "plugins", "modules", name + ".py")
    rss_path = args_path + ".rss"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS_HELPER, rss_path, sys.executable, module, args_path],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=COLLECTIONS), check=False)
    elapsed = time.monotonic() - started
    os.unlink(args_path)
    with open(rss_path) as handle:
        peak = int(handle.read())
    os.unlink(rss_path)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise SystemExit("bench: %s printed no result:\n%s%s" % (name, proc.stdout[-3000:], proc.stderr[-3000:]))
    if result.get("failed"):
        raise SystemExit("bench: %s failed: %s" % (name, result.get("msg")))
    return elapsed, peak, result


def best(repeat, measure, before=None):
    """The fastest of `repeat` runs of measure() -> (seconds, extra); before() runs untimed first."""
    runs = []
    for _attempt in range(repeat):
        if before:
            before()
        runs.append(measure())
    return min(runs, key=lambda item: item[0])


def images_size(bundle):
    """Bytes of the bundle's image files (v1 tarballs under images/, or v2 blobs under blobs/)."""
    total = 0
    for name in ("images", "blobs"):
        for directory, _subdirs, files in os.walk(os.path.join(bundle, name)):
            total += sum(os.path.getsize(os.path.join(directory, file)) for file in files)
    return total


def image_ids(result, *actions):
    """IDs of the images image_load reports with one of `actions` (its `images` items; an image already present
    is `unchanged` in the one result shape of issue 12, `skipped` before it)."""
    return [item["image_id"] for item in result["images"] if item["action"] in actions]


def mb(size):
    return "%.1f MB" % (size / 1e6)


def measure_saves(args, image, work, rows, rss):
    """image_save (none, zstd) against docker save (+ sha256sum, | gzip); leaves plain.tar, none/ and zstd/ in `work`."""
    plain = os.path.join(work, "plain.tar")
    gzipped = os.path.join(work, "image.tar.gz")

    def save_with(compression):
        path = os.path.join(work, compression)
        shutil.rmtree(path, ignore_errors=True)
        return run_module("image_save", {"images": [image], "bundle": path, "compression": compression, "pull": "never"})

    say("save, uncompressed")
    base_save = best(args.repeat, lambda: (timed_shell("docker save -o %s %s && sha256sum %s >/dev/null" % (plain, image, plain)), None))[0]
    save_none = best(args.repeat, lambda: save_with("none"))
    rss["image_save none"] = save_none[1]
    rows.append(("save none", base_save, save_none[0], save_none[0] / base_save))

    say("save, compressed")
    base_gzip = best(args.repeat, lambda: (timed_shell("docker save %s | gzip > %s" % (image, gzipped)), None))[0]
    gzip_size = os.path.getsize(gzipped)
    save_zstd = best(args.repeat, lambda: save_with("zstd"))
    rss["image_save zstd"] = save_zstd[1]
    zstd_size = images_size(os.path.join(work, "zstd"))
    rows.append(("save zstd time", base_gzip, save_zstd[0], base_gzip / save_zstd[0]))
    rows.append(("save zstd size", gzip_size, zstd_size, zstd_size / gzip_size))


def measure_loads(args, image_id, work, rows, rss):
    """image_load of the none/ and zstd/ bundles against sha256sum -c && docker load; then the already-present run."""
    def remove_image():
        run(["docker", "rmi", "-f", image_id])

    say("load")
    sums_dir = os.path.join(work, "by-hand")
    os.makedirs(sums_dir, exist_ok=True)
    shutil.copy(os.path.join(work, "plain.tar"), os.path.join(sums_dir, "image.tar"))
    run(["bash", "-c", "cd %s && sha256sum image.tar > SHA256SUMS" % sums_dir])
    base_load = best(args.repeat, lambda: (timed_shell("sha256sum -c --quiet SHA256SUMS && docker load -q -i image.tar >/dev/null", cwd=sums_dir), None),
                     before=remove_image)[0]
    load_none = best(args.repeat, lambda: run_module("image_load", {"bundle": os.path.join(work, "none")}), before=remove_image)
    load_zstd = best(args.repeat, lambda: run_module("image_load", {"bundle": os.path.join(work, "zstd")}), before=remove_image)
    for result in (load_none[2], load_zstd[2]):
        assert image_ids(result, "loaded") == [image_id], result
    rss["image_load none"] = load_none[1]
    rss["image_load zstd"] = load_zstd[1]
    rows.append(("load", base_load, load_none[0], load_none[0] / base_load))
    rows.append(("load (zstd bundle)", base_load, load_zstd[0], load_zstd[0] / base_load))

    say("already present")
    present = best(args.repeat, lambda: run_module("image_load", {"bundle": os.path.join(work, "zstd")}))
    assert image_ids(present[2], "unchanged", "skipped") == [image_id] and not present[2]["changed"], present[2]
    rss["image_load present"] = present[1]
    rows.append(("present", 2.0, present[0], present[0]))


def print_results(client, image, args, rows, rss):
    uncompressed = client.api.inspect_image(image)["Size"] if client.images.list(name=image) else 0
    print()
    print("fleet.images bundle benchmark: %s (%s in the engine), Docker %s, %d CPU, best of %d" % (
        image, mb(uncompressed), client.version()["Version"], os.cpu_count(), args.repeat))
    print("%-20s %14s %14s %9s   %s" % ("measure", "baseline", "fleet.images", "ratio", "target"))
    for name, baseline, ours, ratio in rows:
        if name == "save zstd size":
            print("%-20s %14s %14s %8.3fx   %s" % (name, mb(baseline), mb(ours), ratio, TARGETS[name]))
        elif name == "present":
            print("%-20s %14s %13.2fs %9s   %s" % (name, "-", ours, "", TARGETS[name]))
        else:
            print("%-20s %13.2fs %13.2fs %8.2fx   %s" % (name, baseline, ours, ratio, TARGETS.get(name, TARGETS["load"])))
    for name, peak in rss.items():
        print("%-20s %14s %14s %9s   %s" % ("peak RSS", name, mb(peak), "", TARGETS["peak RSS"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", default="/var/tmp", help="where the bundles and tarballs go (removed at the end)")
    parser.add_argument("--image", help="measure this existing image instead of the synthetic one (it is removed and loaded back)")
    args = parser.parse_args(argv)

    ensure_collection_link()
    engine.ensure()
    client = engine.client()
    if args.image is None:
        from lab import images

        images.ensure(["base"])
    image = args.image or build_image(client, args.size_mb)
    users = client.containers.list(all=True, filters={"ancestor": image})
    if users:
        raise SystemExit("bench: %s is used by container(s) %s; the load measurements remove it: pick another image"
                         % (image, ", ".join(container.name for container in users)))
    image_id = client.images.get(image).id
    work = tempfile.mkdtemp(prefix="bench-bundle-", dir=args.workdir)
    rows = []
    rss = {}
    try:
        measure_saves(args, image, work, rows, rss)
        measure_loads(args, image_id, work, rows, rss)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if client.images.list(name=image) == [] and image_id:
            say("the image was left removed; it is rebuilt next time")
    print_results(client, image, args, rows, rss)


if __name__ == "__main__":
    main()
