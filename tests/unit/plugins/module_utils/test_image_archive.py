"""Reading image archives from a stream (docker-archive and OCI layout) and deciding image identity."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from ansible_collections.fleet.images.plugins.module_utils.image_archive import (
    MAX_CAPTURED_MEMBER,
    ArchiveError,
    IterReader,
    created_seconds,
    describe_archive,
    fingerprint_from_config,
    fingerprint_from_inspect,
    identity_digests,
    is_same_image,
    normalized_time,
    plan_load,
    read_archive,
)


def digest(data):
    return hashlib.sha256(data).hexdigest()


def add(archive, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def add_dir(archive, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    archive.addfile(info)


def config_bytes(arch="amd64", layers=2, marker="a"):
    return json.dumps({
        "architecture": arch, "os": "linux", "created": "2026-01-02T03:04:05.123456789Z", "config": {"Labels": {"marker": marker}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:%064x" % index for index in range(layers)]},
    }).encode()


def docker_archive(tags=("itest/app:1",), fmt=tarfile.USTAR_FORMAT, layer_size=3000, config=None):
    """What Docker 20.10 `docker save` writes."""
    config = config or config_bytes()
    config_hex = digest(config)
    buffer = io.BytesIO()
    layers = []
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        add(archive, config_hex + ".json", config)
        for index in range(2):
            layer_dir = "%064x" % (index + 7)
            add_dir(archive, layer_dir)
            add(archive, layer_dir + "/VERSION", b"1.0")
            add(archive, layer_dir + "/json", b'{"id": "%s"}' % layer_dir.encode())
            add(archive, layer_dir + "/layer.tar", os.urandom(layer_size))
            layers.append(layer_dir + "/layer.tar")
        add(archive, "manifest.json", json.dumps([{"Config": config_hex + ".json", "RepoTags": list(tags) or None, "Layers": layers}]).encode())
        add(archive, "repositories", b"{}")
    return buffer.getvalue(), "sha256:" + config_hex


def oci_archive(name="docker.io/itest/app:1", with_docker_manifest=True, nested_index=False, fmt=tarfile.PAX_FORMAT):
    """What Docker 25+ `docker save` writes: an OCI layout plus a docker-archive manifest.json."""
    config = config_bytes("arm64", marker="oci")
    layer = os.urandom(5000)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + digest(layer), "size": len(layer)}],
    }).encode()
    blobs = {digest(config): config, digest(layer): layer, digest(manifest): manifest}
    top = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + digest(manifest), "size": len(manifest),
           "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1"}}
    if nested_index:
        inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
            {"mediaType": top["mediaType"], "digest": top["digest"], "size": top["size"], "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()
        blobs[digest(inner)] = inner
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + digest(inner), "size": len(inner),
               "annotations": top["annotations"]}
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [top]}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        add_dir(archive, "blobs")
        add_dir(archive, "blobs/sha256")
        for hexdigest, data in sorted(blobs.items()):
            add(archive, "blobs/sha256/" + hexdigest, data)
        add(archive, "index.json", index)
        if with_docker_manifest:
            add(archive, "manifest.json", json.dumps([{
                "Config": "blobs/sha256/" + digest(config), "RepoTags": ["itest/app:1"], "Layers": ["blobs/sha256/" + digest(layer)]}]).encode())
        add(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    return buffer.getvalue(), "sha256:" + digest(config), top["digest"]


def index_of(data, chunk):
    return read_archive(IterReader(data[start:start + chunk] for start in range(0, len(data), chunk)))


@pytest.mark.parametrize("chunk", [1, 7, 511, 512, 513, 65536, 10 ** 9])
@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_docker_archive_read_from_any_chunking(chunk, fmt):
    data, config_digest = docker_archive(fmt=fmt, layer_size=1500 if chunk == 1 else 3000)
    index = index_of(data, chunk)
    assert index.size == len(data)
    images, layout = describe_archive(index.files)
    assert layout == "docker-archive"
    assert images == [{"config_digest": config_digest, "manifest_digest": None, "repo_tags": ["itest/app:1"], "os": "linux",
                       "architecture": "amd64", "variant": None, "layers": 2, "created": "2026-01-02T03:04:05.123456789Z",
                       "config_fingerprint": fingerprint_from_config(json.loads(config_bytes()))}]
    # layers are listed but never kept in memory
    assert sum(name.endswith("layer.tar") for name in index.names) == 2
    assert not any(name.endswith("layer.tar") for name in index.files)


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_member_names_in_every_tar_dialect(fmt):
    long_name = "d" * 120 + "/" + "e" * 90 + ".json"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        add(archive, long_name, b"{}")
        add(archive, "manifest.json", b"[]")
    index = index_of(buffer.getvalue(), 1000)
    assert index.names == [long_name, "manifest.json"]
    assert index.files["manifest.json"] == b"[]"


def test_oci_layout_with_docker_manifest_as_docker_25_writes_it():
    data, config_digest, manifest_digest = oci_archive()
    images, layout = describe_archive(index_of(data, 4096).files)
    assert layout == "oci+docker-archive"
    assert images == [{"config_digest": config_digest, "manifest_digest": manifest_digest, "repo_tags": ["itest/app:1"], "os": "linux",
                       "architecture": "arm64", "variant": None, "layers": 1, "created": "2026-01-02T03:04:05.123456789Z",
                       "config_fingerprint": fingerprint_from_config(json.loads(config_bytes("arm64", marker="oci")))}]


def test_oci_layout_alone_takes_names_from_annotations():
    data, config_digest, manifest_digest = oci_archive(name="registry.example.com/team/app:2", with_docker_manifest=False)
    images, layout = describe_archive(index_of(data, 4096).files)
    assert layout == "oci"
    assert images[0]["config_digest"] == config_digest
    assert images[0]["manifest_digest"] == manifest_digest
    assert images[0]["repo_tags"] == ["registry.example.com/team/app:2"]


def test_nested_index_resolves_to_the_platform_manifest():
    data, config_digest, index_digest = oci_archive(nested_index=True, with_docker_manifest=False)
    images = describe_archive(index_of(data, 4096).files)[0]
    assert images[0]["config_digest"] == config_digest
    assert images[0]["manifest_digest"] == index_digest


def test_untagged_save_has_no_tags():
    data = docker_archive(tags=())[0]
    images = describe_archive(index_of(data, 4096).files)[0]
    assert images[0]["repo_tags"] == []


def test_a_config_that_does_not_match_its_name_is_refused():
    data, config_digest = docker_archive()
    good = config_bytes()
    files = dict(index_of(data, 4096).files)
    files[config_digest[len("sha256:"):] + ".json"] = good.replace(b"amd64", b"s390x")
    with pytest.raises(ArchiveError, match="has digest sha256:[0-9a-f]{64}, not the %s its name promises" % config_digest):
        describe_archive(files)


@pytest.mark.parametrize("cut", [100, 700, 2000, -1500])
def test_a_cut_off_stream_is_an_error(cut):
    data = docker_archive()[0]
    with pytest.raises(ArchiveError, match="the tar stream ends early|damaged"):
        index_of(data[:cut] if cut > 0 else data[:len(data) + cut - 1024 * 10], 333)


def test_missing_end_blocks_are_tolerated_when_members_are_whole():
    data = docker_archive()[0]
    trimmed = data.rstrip(b"\x00")
    trimmed += b"\x00" * ((-len(trimmed)) % 512)
    assert "manifest.json" in index_of(trimmed, 4096).files


def test_every_byte_reaches_the_tap_even_after_the_end_marker():
    data = docker_archive()[0] + b"\x00" * 5000
    seen = []
    index = read_archive(IterReader([data[:700], data[700:]]), tap=seen.append)
    assert b"".join(seen) == data
    assert index.size == len(data)


def test_garbage_is_not_a_tar():
    with pytest.raises(ArchiveError, match="not a tar archive"):
        index_of(os.urandom(2048), 4096)


def test_not_an_image_archive():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        add(archive, "etc/hostname", b"x\n")
    with pytest.raises(ArchiveError, match="neither manifest.json .* nor index.json"):
        describe_archive(index_of(buffer.getvalue(), 512).files)
    with pytest.raises(ArchiveError, match="holds no file at all"):
        index_of(b"\x00" * 1024, 512)


# --- identity ---------------------------------------------------------------------------------

CONFIG = "sha256:" + "c" * 64
MANIFEST = "sha256:" + "d" * 64
OTHER = "sha256:" + "e" * 64


def entry(tags=("app:1", "app:latest"), image_id=CONFIG, manifest_digest=MANIFEST):
    return {"references": list(tags) or ["app@" + MANIFEST], "tags": list(tags), "image_id": image_id,
            "config_digest": CONFIG, "manifest_digest": manifest_digest}


def engine(images):
    """lookup() over {name or id: image id}, as the engine's inspect answers."""
    return lambda name: {"Id": images[name]} if name in images else None


def test_identity_is_config_and_manifest_digest_and_saved_id():
    assert identity_digests(entry()) == [CONFIG, MANIFEST]
    assert identity_digests(entry(image_id=OTHER, manifest_digest=None)) == [CONFIG, OTHER]


@pytest.mark.parametrize("case, images, expected", [
    ("classic store, all tags", {"app:1": CONFIG, "app:latest": CONFIG, CONFIG: CONFIG}, ("present", CONFIG, [])),
    ("containerd store, all tags", {"app:1": MANIFEST, "app:latest": MANIFEST, MANIFEST: MANIFEST}, ("present", MANIFEST, [])),
    ("one tag missing", {"app:1": CONFIG, CONFIG: CONFIG}, ("tag", CONFIG, ["app:latest"])),
    ("one tag moved to another image", {"app:1": CONFIG, "app:latest": OTHER, CONFIG: CONFIG}, ("tag", CONFIG, ["app:latest"])),
    ("untagged but present by ID", {CONFIG: CONFIG}, ("tag", CONFIG, ["app:1", "app:latest"])),
    ("tags on another image only", {"app:1": OTHER, "app:latest": OTHER}, ("load", None, ["app:1", "app:latest"])),
    ("empty engine", {}, ("load", None, ["app:1", "app:latest"])),
])
def test_plan_load(case, images, expected):
    assert plan_load(entry(), engine(images)) == expected, case


def test_plan_load_for_a_digest_only_reference():
    untagged = entry(tags=())
    assert plan_load(untagged, engine({CONFIG: CONFIG})) == ("present", CONFIG, [])
    assert plan_load(untagged, engine({})) == ("load", None, [])


# --- the store-independent fingerprint ----------------------------------------------------------

IMAGE_CONFIG = {
    "architecture": "amd64", "os": "linux", "created": "2026-11-23T00:32:58.021024754Z",
    "config": {"User": "", "Env": None, "Cmd": ["serve", "/etc/registry.yml"], "Entrypoint": ["/bin/registry"], "WorkingDir": "",
               "Labels": {"a": "1"}, "ExposedPorts": {"5000/tcp": {}}, "Volumes": {"/var/lib/registry": {}}, "OnBuild": None},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]},
    "history": [{"created_by": "ignored"}],
}
# what an engine's inspect shows for that image (extra fields, empty values present or not)
INSPECT = {
    "Id": "sha256:" + "9" * 64, "Created": "2026-11-23T00:32:58.021024754Z", "Os": "linux", "Architecture": "amd64",
    "Config": {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "Tty": False, "Cmd": ["serve", "/etc/registry.yml"],
               "Entrypoint": ["/bin/registry"], "Labels": {"a": "1"}, "ExposedPorts": {"5000/tcp": {}},
               "Volumes": {"/var/lib/registry": {}}, "Image": ""},
    "RootFS": {"Type": "layers", "Layers": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]},
    "RepoTags": ["registry:2"], "Size": 123,
}


def test_fingerprint_is_the_same_from_the_config_blob_and_from_inspect():
    assert fingerprint_from_config(IMAGE_CONFIG) == fingerprint_from_inspect(INSPECT)


@pytest.mark.parametrize("change", [
    lambda attrs: attrs["Config"]["Labels"].update(b="2"),
    lambda attrs: attrs["Config"].update(Cmd=["other"]),
    lambda attrs: attrs["Config"].update(Env=["A=1"]),
    lambda attrs: attrs["RootFS"]["Layers"].pop(),
    lambda attrs: attrs.update(Created="2026-11-23T00:32:58.021024755Z"),
    lambda attrs: attrs.update(Architecture="arm64"),
])
def test_fingerprint_changes_with_what_makes_images_differ(change):
    attrs = json.loads(json.dumps(INSPECT))
    change(attrs)
    assert fingerprint_from_inspect(attrs) != fingerprint_from_config(IMAGE_CONFIG)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-23T00:32:58.021024754Z", "1795393978.021024754"),
    ("2026-11-23T01:32:58.021024754+01:00", "1795393978.021024754"),
    ("2026-11-23T00:32:58.0210247540Z", "1795393978.021024754"),
    ("2026-11-23T00:32:58Z", "1795393978.000000000"),
    ("2026-11-23T00:32:58.5z", "1795393978.500000000"),
    ("not a time", "not a time"),
    ("", None),
    (None, None),
])
def test_times_compare_whatever_their_formatting(text, expected):
    assert normalized_time(text) == expected


def test_created_seconds():
    assert created_seconds("2026-11-23T00:32:58.99Z") == 1795393978
    assert created_seconds(None) is None and created_seconds("garbage") is None


def test_same_image_by_id_or_by_fingerprint():
    entry = {"config_digest": "sha256:" + "c" * 64, "config_fingerprint": fingerprint_from_config(IMAGE_CONFIG)}
    assert is_same_image(dict(INSPECT, Id="sha256:" + "c" * 64), {"config_digest": "sha256:" + "c" * 64})
    assert is_same_image(INSPECT, entry)           # a containerd-store ID made on load, same config
    assert not is_same_image(INSPECT, {"config_digest": "sha256:" + "c" * 64})
    assert not is_same_image(None, entry)


def test_plan_load_searches_as_a_last_resort():
    fingerprint = fingerprint_from_config(IMAGE_CONFIG)
    untagged = {"references": ["registry:2"], "tags": ["registry:2"], "config_digest": CONFIG, "config_fingerprint": fingerprint}
    searched = []

    def search(wanted):
        searched.append(wanted)
        yield dict(INSPECT, Id=OTHER, Created="2020-01-01T00:00:00Z")
        yield INSPECT
    assert plan_load(untagged, engine({}), search) == ("tag", INSPECT["Id"], ["registry:2"])
    assert searched == [untagged]
    # found by tag: no search at all
    searched.clear()
    assert plan_load(untagged, lambda name: INSPECT if name == "registry:2" else None, search) == ("present", INSPECT["Id"], [])
    assert searched == []
    assert plan_load(untagged, engine({}), lambda wanted: iter(())) == ("load", None, ["registry:2"])


# ---------------------------------------------------------------------------------------------
# Crafted archives (issue 10): each ends in an ArchiveError, never a hang, a MemoryError or a traceback.


def header(name, size_field, typeflag=b"0"):
    """One raw ustar header block with `size_field` (12 bytes) as given and a valid checksum."""
    block = bytearray(512)
    block[0:len(name)] = name
    block[100:108] = b"0000644\x00"
    block[108:116] = b"0000000\x00"
    block[116:124] = b"0000000\x00"
    block[124:136] = size_field
    block[136:148] = b"00000000000\x00"
    block[156:157] = typeflag
    block[257:263] = b"ustar\x00"
    block[263:265] = b"00"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


def negative_base256(value):
    return bytes([0xFF]) + (2 ** 88 - value).to_bytes(11, "big")


def crafted(kind):
    if kind == "negative GNU base-256 size":
        return header(b"manifest.json", negative_base256(1024)) + b"\x00" * 4096
    if kind == "bad pax length":
        pax = b"0 path=x\n"
        return header(b"././@PaxHeader", b"%011o\x00" % len(pax), b"x") + pax.ljust(512, b"\x00") + header(b"a", b"%011o\x00" % 0) + b"\x00" * 1024
    if kind == "garbage after a member":
        return header(b"a", b"%011o\x00" % 0) + os.urandom(512) + b"\x00" * 1024
    if kind == "truncated header":
        return header(b"a", b"%011o\x00" % 0) + header(b"b", b"%011o\x00" % 0)[:300]
    raise AssertionError(kind)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["negative GNU base-256 size", "bad pax length", "garbage after a member", "truncated header"])
def test_crafted_tar_headers_end_in_a_clear_error(kind):
    with pytest.raises(ArchiveError) as caught:
        index_of(crafted(kind), 4096)
    assert "tar" in str(caught.value)


def endless_zeros(head):
    yield head
    while True:
        yield b"\x00" * 65536


@pytest.mark.timeout(20)
@pytest.mark.parametrize("typeflag, name", [(b"x", b"././@PaxHeader"), (b"L", b"././@LongLink")])
def test_an_extended_header_is_refused_before_it_is_read_into_memory(typeflag, name):
    # tarfile reads a pax or long-name header whole: 64 MiB announced, endless bytes behind it
    stream = endless_zeros(header(name, b"%011o\x00" % (64 * 1024 * 1024), typeflag))
    with pytest.raises(ArchiveError, match="an extended header of 67108864 bytes"):
        read_archive(IterReader(stream))


def archive_of(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in members:
            add(archive, name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("members, message", [
    ([("manifest.json", b'{"Config": "x.json"}')], "manifest.json in the archive is not a list of images"),
    ([("manifest.json", b'["x"]')], "an image in manifest.json should be a JSON object, not str"),
    ([("manifest.json", b'[{"Config": 7}]')], "Config that is not a file name"),
    ([("manifest.json", b"[" * 100000 + b"]" * 100000)], "nests its JSON too deeply"),
    ([("manifest.json", b"\xff\xfe")], "manifest.json in the archive is not valid JSON"),
    ([("index.json", b'{"manifests": [{"digest": "sha256:' + b"a" * 64 + b'"}]}'), ("blobs/sha256/" + "a" * 64, b"{not json")],
     "blob blobs/sha256/a{64} in the archive is not valid JSON"),
    ([("index.json", b'{"manifests": {"a": 1}}')], "manifests in index.json should be a JSON list"),
    ([("index.json", b'[]')], "index.json in the archive should be a JSON object"),
    ([("manifest.json", b" " * (MAX_CAPTURED_MEMBER + 1))], "manifest.json in the archive has %d bytes, more than" % (MAX_CAPTURED_MEMBER + 1)),
])
def test_malformed_archive_json_is_a_clear_error(members, message):
    index = index_of(archive_of(members), 65536)
    with pytest.raises(ArchiveError, match=message):
        describe_archive(index.files, index.oversized)


def test_a_config_with_the_wrong_shape_is_a_clear_error():
    config = json.dumps({"config": ["not", "an", "object"], "rootfs": {"diff_ids": []}}).encode()
    manifest = json.dumps([{"Config": digest(config) + ".json", "RepoTags": ["a:1"], "Layers": []}]).encode()
    index = index_of(archive_of([(digest(config) + ".json", config), ("manifest.json", manifest)]), 65536)
    with pytest.raises(ArchiveError, match="do not have the shape of an image archive"):
        describe_archive(index.files, index.oversized)


def test_member_count_is_bounded(monkeypatch):
    from ansible_collections.fleet.images.plugins.module_utils import image_archive

    monkeypatch.setattr(image_archive, "MAX_MEMBERS", 5)
    with pytest.raises(ArchiveError, match="more than 5 members"):
        index_of(archive_of([("f%d" % number, b"") for number in range(6)]), 65536)


def test_layers_never_count_against_the_kept_total():
    layers = [("blobs/sha256/%064x" % number, b"\x1f\x8b" + b"\x00" * 1000) for number in range(50)]
    index = index_of(archive_of(layers + [("index.json", b"{}")]), 65536)
    assert list(index.files) == ["index.json"]
    assert len(index.names) == 51
