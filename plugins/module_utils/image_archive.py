# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What an image archive holds, read from the stream as it passes, and what makes two images the same.

Two layouts exist, and Docker 25+ writes both in one archive:

- docker-archive (``docker save`` of every version): ``manifest.json`` lists, per image, its
  ``Config`` file (``<hex>.json``, or ``blobs/sha256/<hex>`` from Docker 25+), ``RepoTags`` and
  ``Layers``;
- OCI image layout (Docker 25+): ``oci-layout``, ``index.json`` whose descriptors point to
  manifests in ``blobs/sha256/``, each naming its config blob; names are in annotations.

:class:`TarStreamIndex` is fed the tar bytes as they stream by (saving or loading) and keeps only
the small JSON members needed to describe the archive, so memory stays bounded whatever the size.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import json
import re

BLOCK = 512
# Small JSON members (configs, manifests, index) are kept; layers are far larger and are skipped.
MAX_CAPTURED_MEMBER = 8 * 1024 * 1024
MAX_CAPTURED_TOTAL = 64 * 1024 * 1024
TOP_LEVEL_FILES = ("manifest.json", "index.json", "oci-layout", "repositories")
OCI_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
REF_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


class ArchiveError(Exception):
    """The stream is not an image archive this code understands; the message says what is wrong."""


def _wanted_member(name):
    if name in TOP_LEVEL_FILES:
        return True
    if "/" not in name and name.endswith(".json"):
        return True  # docker-archive image config: <hex>.json
    return name.startswith("blobs/sha256/") and name.count("/") == 2


def _octal(field):
    text = field.replace(b"\x00", b" ").strip()
    return int(text, 8) if text else 0


def _number(field):
    """A tar numeric field: octal text, or GNU base-256 when the high bit of the first byte is set."""
    if field[0] & 0x80:
        value = field[0] & 0x3F
        for byte in field[1:]:
            value = (value << 8) | byte
        return -value if field[0] & 0x40 else value
    return _octal(field)


def _text(field):
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _parse_pax(data):
    records = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0:
            break
        length = int(data[position:space])
        record = data[space + 1:position + length - 1]
        key, _separator, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


class TarStreamIndex:
    """Parse a tar stream fed in arbitrary chunks; keep the members an image archive is described by.

    After close(): ``files`` maps member names to their bytes (only the small JSON members),
    ``names`` lists every member, ``size`` counts the bytes fed.
    """

    def __init__(self):
        self.files = {}
        self.names = []
        self.size = 0
        self._header = bytearray()
        self._remaining = 0
        self._padding = 0
        self._member = None
        self._capture = None
        self._captured_total = 0
        self._long_name = None
        self._pax = {}
        self._ended = False

    def feed(self, data):
        base = self.size
        self.size += len(data)
        view = memoryview(data)
        position = 0
        length = len(view)
        while position < length:
            if self._ended:
                return
            if self._remaining:
                take = min(self._remaining, length - position)
                if self._capture is not None:
                    self._capture += view[position:position + take]
                self._remaining -= take
                position += take
                if not self._remaining:
                    self._finish_member()
            elif self._padding:
                take = min(self._padding, length - position)
                self._padding -= take
                position += take
            else:
                take = min(BLOCK - len(self._header), length - position)
                self._header += view[position:position + take]
                position += take
                if len(self._header) == BLOCK:
                    header = bytes(self._header)
                    self._header = bytearray()
                    self._start_member(header, base + position - BLOCK)

    def _start_member(self, header, offset):
        if header == b"\x00" * BLOCK:
            self._ended = True
            return
        try:
            stored = _octal(header[148:156])
        except ValueError:
            stored = None
        if stored != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            raise ArchiveError("not a tar archive: bad header checksum at byte %d of the stream" % offset)
        typeflag = header[156:157]
        size = _number(header[124:136])
        name = _text(header[0:100])
        if header[257:263] == b"ustar\x00" and header[345:346] != b"\x00":
            name = _text(header[345:500]) + "/" + name
        if typeflag not in (b"x", b"g", b"L", b"K"):
            if self._long_name is not None:
                name = self._long_name
            if "path" in self._pax:
                name = self._pax["path"]
            if "size" in self._pax:
                size = int(self._pax["size"])
            self._long_name = None
            self._pax = {}
        while name.startswith("./"):
            name = name[2:]
        self._member = (typeflag, name, size)
        self._remaining = size if typeflag not in (b"1", b"2", b"3", b"4", b"5", b"6") else 0
        self._padding = (-self._remaining) % BLOCK
        metadata = typeflag in (b"x", b"g", b"L", b"K")
        regular = typeflag in (b"0", b"\x00", b"7")
        if metadata or (regular and size <= MAX_CAPTURED_MEMBER and _wanted_member(name)
                        and self._captured_total + size <= MAX_CAPTURED_TOTAL):
            self._capture = bytearray()
        else:
            self._capture = None
        if not self._remaining:
            self._finish_member()

    def _finish_member(self):
        typeflag, name, _size = self._member
        data = bytes(self._capture) if self._capture is not None else None
        self._capture = None
        if typeflag == b"L":
            self._long_name = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        elif typeflag == b"x":
            self._pax = _parse_pax(data)
        elif typeflag in (b"g", b"K"):
            pass
        else:
            self.names.append(name)
            if data is not None and (not name.startswith("blobs/") or data[:1] == b"{"):
                self.files[name] = data
                self._captured_total += len(data)
        self._member = None

    def close(self):
        """Raise ArchiveError when the stream stopped inside a member (a cut-off save or a truncated file)."""
        if self._remaining or self._padding or self._header.strip(b"\x00"):
            where = ("inside %s" % self._member[1]) if self._member else "inside a tar header"
            raise ArchiveError("the tar stream ends early, %s, after %d bytes: the archive is incomplete" % (where, self.size))
        if not self.names:
            raise ArchiveError("the tar stream holds no file at all (%d bytes)" % self.size)


def _json(files, name, what):
    try:
        return json.loads(files[name].decode("utf-8"))
    except KeyError:
        raise ArchiveError("the archive has no %s (%s)" % (name, what)) from None
    except ValueError as exc:
        raise ArchiveError("%s in the archive is not valid JSON: %s" % (name, exc)) from exc


def _blob_name(digest):
    algorithm, _separator, hexdigest = (digest or "").partition(":")
    return "blobs/%s/%s" % (algorithm, hexdigest)


def _config_digest_from_path(path):
    """The image config's digest from its archive path: ``<hex>.json`` or ``blobs/sha256/<hex>``."""
    base = path.rsplit("/", 1)[-1]
    if base.endswith(".json"):
        base = base[:-len(".json")]
    return "sha256:" + base


def familiar_name(name):
    """``docker.io/library/nginx:1`` → ``nginx:1``, ``docker.io/team/app:1`` → ``team/app:1``: how the engine lists tags."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _check_config(files, path, digest):
    data = files.get(path)
    if data is None:
        raise ArchiveError("the archive's manifest names config %s, which is not in the archive" % path)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ArchiveError("config %s in the archive has digest %s, not the %s its name promises" % (path, actual, digest))
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise ArchiveError("config %s in the archive is not valid JSON: %s" % (path, exc)) from exc


def _oci_images(files):
    """{config digest: {manifest_digest, names}} from index.json; nested indexes resolve to their first manifest."""
    index = _json(files, "index.json", "OCI layout index")
    found = {}
    for descriptor in index.get("manifests") or []:
        digest = descriptor.get("digest")
        annotations = descriptor.get("annotations") or {}
        names = []
        if annotations.get("io.containerd.image.name"):
            names.append(familiar_name(annotations["io.containerd.image.name"]))
        target = descriptor
        document = None
        for _depth in range(4):
            document = files.get(_blob_name(target.get("digest")))
            if document is None:
                break
            document = json.loads(document.decode("utf-8"))
            if target.get("mediaType") in OCI_INDEX_TYPES or "manifests" in document:
                children = document.get("manifests") or []
                if not children:
                    document = None
                    break
                target = children[0]
                continue
            break
        config = (document or {}).get("config") or {}
        key = config.get("digest") or digest
        image = found.setdefault(key, {"manifest_digest": digest, "names": []})
        image["names"] += [name for name in names if name not in image["names"]]
    return found


def describe_archive(files):
    """Describe every image in an archive from its captured members; returns (images, layout).

    Each image: config_digest, manifest_digest (None for a docker-archive), repo_tags, os,
    architecture, variant, layers (count). layout: ``docker-archive``, ``oci`` or
    ``oci+docker-archive``.
    """
    has_docker = "manifest.json" in files
    has_oci = "index.json" in files
    if not has_docker and not has_oci:
        raise ArchiveError("the archive has neither manifest.json (docker-archive) nor index.json (OCI layout): it is not an image archive")
    oci = _oci_images(files) if has_oci else {}
    images = []
    if has_docker:
        manifest = _json(files, "manifest.json", "docker-archive manifest")
        if not isinstance(manifest, list):
            raise ArchiveError("manifest.json in the archive is not a list of images")
        for item in manifest:
            config_path = item.get("Config") or ""
            digest = _config_digest_from_path(config_path)
            config = _check_config(files, config_path, digest)
            from_oci = oci.pop(digest, {})
            tags = list(item.get("RepoTags") or [])
            tags += [name for name in from_oci.get("names", []) if name not in tags and "@" not in name]
            images.append(_image(digest, from_oci.get("manifest_digest"), tags, config, len(item.get("Layers") or [])))
    for digest, from_oci in oci.items():
        config = _check_config(files, _blob_name(digest), digest) if digest.startswith("sha256:") else {}
        layers = len((config.get("rootfs") or {}).get("diff_ids") or [])
        images.append(_image(digest, from_oci["manifest_digest"], [n for n in from_oci["names"] if "@" not in n], config, layers))
    layout = "oci+docker-archive" if has_docker and has_oci else ("oci" if has_oci else "docker-archive")
    return images, layout


def _image(config_digest, manifest_digest, tags, config, layers):
    return {
        "config_digest": config_digest,
        "manifest_digest": manifest_digest,
        "config_fingerprint": fingerprint_from_config(config) if config else None,
        "created": config.get("created"),
        "repo_tags": tags,
        "os": config.get("os"),
        "architecture": config.get("architecture"),
        "variant": config.get("variant"),
        "layers": layers,
    }


# ---------------------------------------------------------------------------------------------
# Identity: is the image a bundle entry describes already in an engine?

# Fields of the image config's "config" section that the engine's inspect also shows as "Config".
FINGERPRINT_CONFIG_KEYS = ("User", "Env", "Cmd", "Entrypoint", "WorkingDir", "Labels", "ExposedPorts", "Volumes", "StopSignal")
TIME_PATTERN = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})$")


def created_seconds(text):
    """Whole seconds since the epoch of an RFC 3339 time (the engine's image list shows these), or None."""
    normalized = normalized_time(text)
    try:
        return int(normalized.split(".")[0]) if normalized else None
    except ValueError:
        return None


def normalized_time(text):
    """An RFC 3339 time as UTC ``seconds.nanoseconds`` since the epoch, so formatting differences vanish."""
    match = TIME_PATTERN.match(text or "")
    if not match:
        return text or None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = (match.group(7) or "").ljust(9, "0")[:9]
    zone = match.group(8)
    offset = 0 if zone in ("Z", "z") else (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc)
    return "%d.%s" % (calendar.timegm(moment.timetuple()) - offset, fraction)


def _meaningful(value):
    return value not in (None, "", [], {})


def _fingerprint(created, os_name, architecture, variant, diff_ids, config):
    document = {
        "created": normalized_time(created),
        "os": os_name or None,
        "architecture": architecture or None,
        "variant": variant or None,
        "diff_ids": list(diff_ids or []),
        "config": {key: config[key] for key in FINGERPRINT_CONFIG_KEYS if _meaningful((config or {}).get(key))},
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint_from_config(config):
    """The store-independent fingerprint of an image, from its config blob (as in an archive)."""
    return _fingerprint(config.get("created"), config.get("os"), config.get("architecture"), config.get("variant"),
                        (config.get("rootfs") or {}).get("diff_ids"), config.get("config"))


def fingerprint_from_inspect(attrs):
    """The same fingerprint from the engine's inspect answer: equal when the image config is the same."""
    return _fingerprint(attrs.get("Created"), attrs.get("Os"), attrs.get("Architecture"), attrs.get("Variant"),
                        (attrs.get("RootFS") or {}).get("Layers"), attrs.get("Config"))


def identity_digests(entry):
    """The digests an engine may report as the entry's image ID.

    The classic image store reports the config digest; the containerd image store reports the
    digest of the manifest (or index) the image was loaded from; the saving engine's own ID is
    one of these two.
    """
    digests = []
    for key in ("config_digest", "manifest_digest", "image_id"):
        value = entry.get(key)
        if value and value not in digests:
            digests.append(value)
    return digests


def is_same_image(attrs, entry):
    """Whether the engine's image (inspect dict) is the image `entry` describes.

    Its ID is one of identity_digests(entry), or else (the containerd store gives an image
    loaded from a docker-archive an ID made on the spot) its config fingerprint is the entry's:
    created time, platform, layer diff IDs and run configuration, all read from the image config.
    """
    if not attrs:
        return False
    if attrs.get("Id") in identity_digests(entry):
        return True
    fingerprint = entry.get("config_fingerprint")
    return bool(fingerprint) and fingerprint_from_inspect(attrs) == fingerprint


def plan_load(entry, lookup, search=None):
    """Decide what loading `entry` needs, asking `lookup(name)` for the engine's image (inspect dict or None).

    Returns ``(action, image_id, tags_to_set)``: ``present`` (the same image under every recorded
    tag: nothing to do, the tarball is not read), ``tag`` (the image is there but some recorded
    tags are missing or point elsewhere: set them, the tarball is not read), or ``load``.
    `search(entry)`, when given, yields inspect dicts of other images that may be it: the last
    resort when neither a tag nor a recorded ID finds it (containerd store, docker-archive).
    """
    tags = list(entry.get("tags") or [])
    missing = []
    present_id = None
    for tag in tags:
        attrs = lookup(tag)
        if is_same_image(attrs, entry):
            present_id = attrs["Id"]
        else:
            missing.append(tag)
    if tags and not missing:
        return "present", present_id, []
    if present_id is None:
        for digest in identity_digests(entry):
            attrs = lookup(digest)
            if is_same_image(attrs, entry):
                present_id = attrs["Id"]
                break
    if present_id is None and search is not None:
        present_id = next((attrs["Id"] for attrs in search(entry) if is_same_image(attrs, entry)), None)
    if present_id is None:
        return "load", None, tags
    return ("tag", present_id, missing) if missing else ("present", present_id, [])
