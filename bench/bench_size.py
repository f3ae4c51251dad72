"""Bundle size: K images sharing one base, as bundle v1, bundle v2 and one `docker save | zstd` tarball.

Builds (offline, once; images named fi-g-bench/...) K images on one shared base:

  base     fleet-lab/base:bookworm (Debian, 117 MB) + one layer of --base-mb MB of data
  app-i:<base>mb-1   base + one distinct top layer of 1 to 5 MB (i = 1..K, sizes spread evenly)
  app-1:<base>mb-2   app-1 + one new layer of --new-layer-mb MB (the "next month" image)

Every data layer is a mix that compresses like real content: 70 % bytes of the lab base's own root
file system layer (Debian binaries, libraries and text), passed through a byte permutation chosen
per layer (it keeps LZ matches and byte statistics, so zstd compresses it as it compresses the
original, yet no two layers are alike), and 30 % random bytes (already compressed files).

Then, with the local engine, it measures the sizes (every file under the bundle directory, wheels
excluded since none are written) of:

  v1            image_save format_version=1 compression=zstd (one tarball per image)
  v2            image_save format_version=2 (content-addressed blobs, each layer once, gzip layers: the default)
  v2 zstd       image_save format_version=2 compression=zstd (zstd layers: the opt-in for sites whose
                engines are all Docker >= 23)
  docker save   `docker save` of all K images into ONE tarball, `zstd -3` (the reference), and `gzip -6`
                (the compression of v2's layer blobs: Docker 20.10 loads and pulls no zstd layer,
                /work/briefs/decisions.md, docs/bundle-format.md)
  differential  image_save format_version=2 base=<the v2 bundle> of the K images where app-1 is its :<base>mb-2,
                against the new layer's own compressed size (its layer tar, zstd -3) + 1 MB

The v2 and differential rows come from the real writer only: when image_save has no
format_version (or no base, or refuses zstd layers) they print "n/a" instead of a number.

  .venv/bin/python bench/bench_size.py                         # K = 10, 100 MB base data
  .venv/bin/python bench/bench_size.py --count 3 --base-mb 20  # small, while developing
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import sys
import tarfile
import tempfile
import time

import zstandard

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from bench_bundle import BASE_IMAGE, BLOCK, COLLECTIONS, base_layer_bytes, run, run_module, say  # noqa: E402
from lab import engine, images  # noqa: E402

REPOSITORY = "fi-g-bench"
# Bump when the data recipe changes, so old images are not reused.
RECIPE = 1
ZSTD_LEVEL = 3  # image_save's default level, and the zstd command's
GZIP_LEVEL = 6  # image_save's default gzip level (v2 layer blobs are gzip: Docker 20.10 reads no zstd layer)
TARGETS = {
    "v2": "<= 1.05 x the docker save zstd tarball",
    "v2 zstd": "<= 1.05 x the docker save zstd tarball",
    "differential": "<= 1.1 x new layer (zstd) + 1 MB",
}


# --- the image family -------------------------------------------------------------------------

def mixed_data(real, size, rng):
    """`size` bytes: 70 % permuted real content (cycled if needed), 30 % random."""
    table = list(range(256))
    rng.shuffle(table)
    real_size = int(size * 0.7)
    permuted = real[:real_size].translate(bytes(table))
    while len(permuted) < real_size:
        rng.shuffle(table)
        permuted += real[:real_size - len(permuted)].translate(bytes(table))
    return permuted + rng.randbytes(size - real_size)


def build(tag, parent, size, real, seed):
    """Build `tag` as `parent` plus one layer of `size` bytes of mixed data (skipped if built)."""
    label = "%d-%s-%d-%d" % (RECIPE, parent, size, seed)
    client = engine.client()
    try:
        if client.images.get(tag).labels.get("fi-g.bench") == label:
            return
    except Exception:  # not built yet
        pass
    context = tempfile.mkdtemp(prefix="fi-g-build-", dir="/var/tmp")
    try:
        with open(os.path.join(context, "data.bin"), "wb") as handle:
            handle.write(mixed_data(real, size, random.Random(seed)))
        with open(os.path.join(context, "Dockerfile"), "w") as handle:
            handle.write("FROM %s\nCOPY data.bin /data/%s.bin\nLABEL fi-g.bench=%s\n" % (parent, seed, label))
        run(["docker", "build", "-q", "-t", tag, context])
    finally:
        shutil.rmtree(context, ignore_errors=True)
    say("built %s (%s + %.1f MB)" % (tag, parent, size / 1e6))


def top_layer_sizes(count):
    """Distinct top layers spread evenly from 1 to 5 MB."""
    if count == 1:
        return [BLOCK]
    return [int(BLOCK * (1 + 4 * index / (count - 1))) for index in range(count)]


def build_family(count, base_mb, new_layer_mb):
    """Return (base, [app references before], [app references after]) for K images."""
    images.ensure(["base"])
    real = base_layer_bytes(engine.client())
    base = "%s/base:%dmb-r%d" % (REPOSITORY, base_mb, RECIPE)
    build(base, BASE_IMAGE, base_mb * BLOCK, real, 1000)
    before = []
    for index, size in enumerate(top_layer_sizes(count)):
        tag = "%s/app-%d:%dmb-1" % (REPOSITORY, index + 1, base_mb)
        build(tag, base, size, real, index + 1)
        before.append(tag)
    changed = "%s/app-1:%dmb-2" % (REPOSITORY, base_mb)
    build(changed, before[0], int(new_layer_mb * BLOCK), real, 2000)
    return base, before, [changed] + before[1:]


# --- measuring --------------------------------------------------------------------------------

def tree_size(path):
    total = 0
    for directory, _subdirs, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(directory, name)) for name in files)
    return total


def supports(option):
    """Whether this checkout's image_save has `option` (its argument spec names it)."""
    module = os.path.join(COLLECTIONS, "ansible_collections", "fleet", "images", "plugins", "modules", "image_save.py")
    with open(module) as handle:
        return "%s=dict(" % option in handle.read()


def save(references, bundle, **options):
    seconds, peak, result = run_module("image_save", dict(images=references, bundle=bundle, pull="never", **options))
    return tree_size(bundle), seconds, peak, result


def docker_save_compressed(references, path, compressor):
    started = time.monotonic()
    run(["bash", "-o", "pipefail", "-c", "docker save %s | %s > %s" % (" ".join(references), compressor, path)])
    return os.path.getsize(path), time.monotonic() - started


def new_layer_compressed(reference, work):
    """The zstd -3 size of `reference`'s top layer tar (as `docker save` gives it), and its raw size."""
    archive_path = os.path.join(work, "top.tar")
    run(["docker", "save", "-o", archive_path, reference])
    with tarfile.open(archive_path) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        layer = archive.extractfile(manifest[0]["Layers"][-1]).read()
    os.unlink(archive_path)
    return len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(layer)), len(layer)


def measure(args, before, after, work):
    rows = {}
    say("v1 bundle of %d images" % len(before))
    rows["v1"] = save(before, os.path.join(work, "v1"), compression="zstd", **({"format_version": 1} if supports("format_version") else {}))
    say("docker save | zstd of %d images" % len(before))
    rows["docker save"] = docker_save_compressed(before, os.path.join(work, "all.tar.zst"), "zstd -q -%d -T0" % ZSTD_LEVEL)
    rows["docker save gzip"] = docker_save_compressed(before, os.path.join(work, "all.tar.gz"), "gzip -%d" % GZIP_LEVEL)
    layer_size, layer_raw = new_layer_compressed(after[0], work)
    rows["new layer"] = (layer_size, layer_raw)
    if supports("format_version"):
        say("v2 bundle of %d images" % len(before))
        rows["v2"] = save(before, os.path.join(work, "v2"), format_version=2)
        say("v2 bundle of %d images, zstd layers" % len(before))
        rows["v2 zstd"] = v2_zstd(before, os.path.join(work, "v2-zstd"))
        if supports("base"):
            say("differential v2 bundle (app-1 gained a layer)")
            rows["differential"] = save(after, os.path.join(work, "diff"), format_version=2, base=os.path.join(work, "v2"))
    return rows


def v2_zstd(references, bundle):
    """The v2 row with zstd layers, or None when this checkout's image_save refuses them (before the opt-in)."""
    try:
        return save(references, bundle, format_version=2, compression="zstd")
    except SystemExit as exc:  # run_module's way to report a failed module run
        say("no v2 zstd row: %s" % exc)
        return None


# --- the table ----------------------------------------------------------------------------------

LABELS = {"v1": "v1 (image_save)", "v2": "v2, gzip layers (image_save)", "v2 zstd": "v2, zstd layers (opt-in, Docker >= 23)"}


def mb(size):
    return "%.1f MB" % (size / 1e6)


def print_table(args, rows):
    reference, gzip_reference = rows["docker save"][0], rows["docker save gzip"][0]
    layer_size, layer_raw = rows["new layer"]
    client = engine.client()
    print()
    print("Bundle size, %s, K = %d, base = %s + %d MB data, top layers 1-5 MB, new layer %.1f MB; Docker %s"
          % (datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), args.count, BASE_IMAGE,
             args.base_mb, layer_raw / 1e6, client.version()["Version"]))
    print()
    print("| bundle | size | x docker save zstd | x docker save gzip | time s | peak RSS | target |")
    print("|---|---|---|---|---|---|---|")
    for name, level in (("docker save", "zstd -%d" % ZSTD_LEVEL), ("docker save gzip", "gzip -%d" % GZIP_LEVEL)):
        size, seconds = rows[name]
        print("| docker save of all K, %s | %s | %.2f | %.2f | %.1f | - | - |" % (level, mb(size), size / reference, size / gzip_reference, seconds))
    for name in ("v1", "v2", "v2 zstd"):
        if not rows.get(name):
            why = "image_save has no format_version" if name not in rows else "image_save refuses zstd layers"
            print("| %s | n/a (%s) | | | | | %s |" % (LABELS[name], why, TARGETS.get(name, "-")))
            continue
        size, seconds, peak, _result = rows[name]
        verdict = ""
        if name in TARGETS:
            verdict = " (%s)" % ("met" if size <= 1.05 * reference else "NOT met")
        print("| %s | %s | %.2f%s | %.2f | %.1f | %s | %s |"
              % (LABELS[name], mb(size), size / reference, verdict, size / gzip_reference, seconds, mb(peak), TARGETS.get(name, "-")))
    print()
    print("| differential | size | new layer, zstd -%d | limit: 1.1 x new layer + 1 MB | target |" % ZSTD_LEVEL)
    print("|---|---|---|---|---|")
    limit = 1.1 * layer_size + 1e6
    if "differential" not in rows:
        print("| v2, base = the v2 bundle | n/a (image_save has no base) | %s | %s | %s |" % (mb(layer_size), mb(limit), TARGETS["differential"]))
        return
    size = rows["differential"][0]
    print("| v2, base = the v2 bundle | %s | %s | %s (%s) | %s |"
          % (mb(size), mb(layer_size), mb(limit), "met" if size <= limit else "NOT met", TARGETS["differential"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10, help="K, the number of images sharing the base (default 10)")
    parser.add_argument("--base-mb", type=int, default=100, help="MB of data in the shared base's own layer (default 100)")
    parser.add_argument("--new-layer-mb", type=float, default=5, help="MB of the layer app-1 gains for the differential (default 5)")
    parser.add_argument("--workdir", default="/var/tmp", help="where the bundles go (removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the bundles (their directory is printed)")
    args = parser.parse_args(argv)
    engine.ensure()
    _base, before, after = build_family(args.count, args.base_mb, args.new_layer_mb)
    work = tempfile.mkdtemp(prefix="fi-g-size-", dir=args.workdir)
    try:
        rows = measure(args, before, after, work)
    finally:
        if args.keep:
            say("bundles kept in %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print_table(args, rows)


if __name__ == "__main__":
    main()
