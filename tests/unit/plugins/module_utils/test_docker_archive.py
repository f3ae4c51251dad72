"""The docker-archive composed on the fly (docker_archive.py): a tar `docker load` reads, layers the engine has
named but not sent, sizes enforced, chain IDs as the engine computes them."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from ansible_collections.fleet.images.plugins.module_utils.docker_archive import (
    ArchiveStreamError,
    chain_ids,
    compose,
    engine_reads,
)

D0, D1, D2 = ("sha256:" + hashlib.sha256(name).hexdigest() for name in (b"zero", b"one", b"two"))
CONFIG = b'{"rootfs": {"type": "layers"}}'
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()


def read(chunks):
    return tarfile.open(fileobj=io.BytesIO(b"".join(chunks)))


def test_chain_ids_are_the_engine_s():
    # chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)) (image/spec, layer.CreateChainID)
    second = "sha256:" + hashlib.sha256(("%s %s" % (D0, D1)).encode()).hexdigest()
    third = "sha256:" + hashlib.sha256(("%s %s" % (second, D2)).encode()).hexdigest()
    assert chain_ids([D0, D1, D2]) == [D0, second, third]
    assert chain_ids([]) == []


@pytest.mark.parametrize("compression, version, reads", [
    ("none", "20.10.24+dfsg1", True), ("gzip", "20.10.24+dfsg1", True), ("zstd", "20.10.24+dfsg1", False),
    ("zstd", "23.0.1", True), ("zstd", "26.1.5+dfsg1", True), ("zstd", "", False),
])
def test_only_docker_23_and_later_read_zstd_layers_themselves(compression, version, reads):
    assert engine_reads(compression, version) is reads


def test_the_archive_names_every_layer_and_carries_only_those_given():
    layer = b"x" * 1000  # not a multiple of 512: padded
    archive = read(compose([{"config_digest": CONFIG_DIGEST, "config": CONFIG,
                             "layers": [(D0, None, 0), (D1, io.BytesIO(layer), len(layer))]}]))
    names = archive.getnames()
    assert names == ["%s.json" % CONFIG_DIGEST[7:], "%s/layer.tar" % D1[7:], "manifest.json"]
    assert json.load(archive.extractfile("manifest.json")) == [
        {"Config": "%s.json" % CONFIG_DIGEST[7:], "RepoTags": [], "Layers": ["%s/layer.tar" % D0[7:], "%s/layer.tar" % D1[7:]]}]
    assert archive.extractfile("%s/layer.tar" % D1[7:]).read() == layer
    assert archive.extractfile("%s.json" % CONFIG_DIGEST[7:]).read() == CONFIG


def test_a_layer_twice_in_one_rootfs_is_sent_once():
    layer = b"empty-ish"
    archive = read(compose([{"config_digest": CONFIG_DIGEST, "config": CONFIG,
                             "layers": [(D0, io.BytesIO(layer), len(layer)), (D0, io.BytesIO(layer), len(layer))]}]))
    assert archive.getnames().count("%s/layer.tar" % D0[7:]) == 1
    assert json.load(archive.extractfile("manifest.json"))[0]["Layers"] == ["%s/layer.tar" % D0[7:]] * 2


@pytest.mark.parametrize("data, problem", [(b"short", "ended after 5 of the 10 bytes"), (b"x" * 11, "holds more than the 10 bytes")])
def test_a_member_whose_bytes_differ_from_its_recorded_size_stops_the_stream(data, problem):
    with pytest.raises(ArchiveStreamError, match=problem):
        b"".join(compose([{"config_digest": CONFIG_DIGEST, "config": CONFIG, "layers": [(D1, io.BytesIO(data), 10)]}]))
