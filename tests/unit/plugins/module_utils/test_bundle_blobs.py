"""Layer blobs of a version 2 bundle (bundle_blobs.store_layer), without any engine: media types by compression,
the same layer giving the same blob bytes on every save, a held layer keeping its own compression, and
image_save's zstd / level checks failing before anything is written."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile

import pytest
import zstandard

from ansible_collections.fleet.images.plugins.module_utils import bundle, bundle_blobs, compression
from ansible_collections.fleet.images.plugins.module_utils.bundle_save_v2 import save_images_v2
from ansible_collections.fleet.images.plugins.module_utils.compression import CompressionError

MEDIA_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def layer_tar(seed):
    """A plain layer tar: some random bytes (already compressed files) and repetitive text."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in (("random.bin", os.urandom(300 * 1024)), ("text.txt", (b"%s line of layer text\n" % seed) * 40000)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def bundle_dir(tmp_path, name):
    directory = str(tmp_path / name)
    os.makedirs(bundle_blobs.blobs_dir(directory))
    return directory


def store(directory, member, kind, level=None, head=b"", known=None):
    """store_layer as the archive reader calls it: `head` is what it read of the member already."""
    handle = io.BytesIO(member)
    handle.read(len(head))
    return bundle_blobs.store_layer(directory, handle, head, kind, level, known)


def blob_bytes(directory, descriptor):
    with open(bundle.blob_path(directory, descriptor["digest"]), "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("kind", ["zstd", "gzip", "none"])
def test_a_layer_blob_has_its_compression_s_media_type_and_holds_the_plain_layer(tmp_path, kind):
    plain = layer_tar(b"one")
    directory = bundle_dir(tmp_path, "bundle")
    layer = store(directory, plain, kind)
    data = blob_bytes(directory, layer)
    assert layer["media_type"] == MEDIA_TYPES[kind] and bundle.layer_compression(layer["media_type"]) == kind
    assert layer["digest"] == "sha256:" + hashlib.sha256(data).hexdigest() and layer["size"] == len(data)
    assert layer["diff_id"] == "sha256:" + hashlib.sha256(plain).hexdigest() and layer["diff_size"] == len(plain)
    decoded = {"zstd": lambda: zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read(), "gzip": lambda: gzip.decompress(data),
               "none": lambda: data}[kind]()
    assert decoded == plain
    if kind == "zstd":
        assert data.startswith(compression.ZSTD_MAGIC) and len(data) < len(gzip.compress(plain, 6))


@pytest.mark.parametrize("kind", ["zstd", "gzip"])
def test_the_same_layer_gives_the_same_blob_on_every_save_whatever_the_archive_form(tmp_path, kind):
    """Saved twice, read in other pieces, or from a member the engine stored compressed: same bytes, same digest."""
    plain = layer_tar(b"same")
    first = store(bundle_dir(tmp_path, "first"), plain, kind)
    again = store(bundle_dir(tmp_path, "again"), plain, kind, head=plain[:300])
    from_gzip_member = store(bundle_dir(tmp_path, "gzip-member"), gzip.compress(plain, mtime=0), kind)
    from_zstd_member = store(bundle_dir(tmp_path, "zstd-member"), zstandard.ZstdCompressor(level=19).compress(plain), kind)
    assert first == again == from_gzip_member == from_zstd_member
    other_level = store(bundle_dir(tmp_path, "other-level"), plain, kind, level=1)
    assert other_level["diff_id"] == first["diff_id"] and other_level["digest"] != first["digest"]


def test_a_layer_held_as_gzip_keeps_its_blob_when_a_zstd_save_meets_it(tmp_path):
    """The rule for differential bundles: a layer the base (or the bundle) holds is reused whatever its compression."""
    plain = layer_tar(b"base")
    base_layer = store(bundle_dir(tmp_path, "base"), plain, "gzip")
    directory = bundle_dir(tmp_path, "new")
    found = store(directory, plain, "zstd", known={base_layer["diff_id"]: base_layer})
    assert found == base_layer and found["media_type"] == MEDIA_TYPES["gzip"]
    assert os.listdir(bundle_blobs.blobs_dir(directory)) == []  # the zstd blob made while hashing is gone again


def v2_options(**overrides):
    return dict(dict(compression="zstd", level=None, pull="never", platform=None, force=False, prune=False, base=None), **overrides)


@pytest.mark.parametrize("kind, level, message", [
    ("zstd", 23, "compression level 23 is out of range for zstd: expected 1 to 22"),
    ("zstd", 0, "compression level 0 is out of range for zstd: expected 1 to 22"),
    ("gzip", 10, "compression level 10 is out of range for gzip: expected 1 to 9"),
])
def test_a_level_out_of_range_fails_before_the_engine_is_asked_or_anything_written(tmp_path, kind, level, message):
    dest = str(tmp_path / "bundle")
    with pytest.raises(CompressionError, match=message):
        save_images_v2(None, dest, ["fi-z/app:1"], v2_options(compression=kind, level=level))
    assert not os.path.exists(dest)


def test_zstd_layers_without_zstandard_fail_before_the_engine_is_asked_naming_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(compression, "zstandard", None)
    dest = str(tmp_path / "bundle")
    with pytest.raises(CompressionError, match="zstd is not available on this host .*install the Python package zstandard"):
        save_images_v2(None, dest, ["fi-z/app:1"], v2_options())
    assert not os.path.exists(dest)
