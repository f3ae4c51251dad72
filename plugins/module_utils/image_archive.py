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

:func:`read_archive` reads the tar stream with Python's ``tarfile`` in streaming mode and keeps
only the small JSON members needed to describe the archive. Everything is bounded: member count,
extended header sizes, each kept member and their total, so a crafted archive ends in an
:class:`ArchiveError`, never in a hang or an exhausted memory.
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import json
import re
import tarfile

from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref

# Small JSON members (configs, manifests, index) are kept; layers are far larger and are skipped.
MAX_CAPTURED_MEMBER = 8 * 1024 * 1024
MAX_CAPTURED_TOTAL = 64 * 1024 * 1024
# An image archive has a handful of members per layer; far more means it is not one.
MAX_MEMBERS = 20000
# pax and GNU long-name headers are read whole into memory by tarfile: real ones are a few hundred bytes.
MAX_EXTENDED_HEADER = 1024 * 1024
READ_PIECE = 1024 * 1024
EXTENDED_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
HeaderError, SubsequentHeaderError = tarfile.HeaderError, tarfile.SubsequentHeaderError
# tarfile's ways of saying "the archive ends here" (zero blocks, or no more bytes), or an error already worded
ENDING_HEADERS = (tarfile.EOFHeaderError, tarfile.EmptyHeaderError, tarfile.SubsequentHeaderError)
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


class IterReader:
    """A read(n) over an iterator of byte chunks (the engine's HTTP stream)."""

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def read(self, size=-1):
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return b""
        if size is None or size < 0:
            size = len(self._pending)
        block = self._pending[:size]
        self._pending = self._pending[size:]  # a view: no copy of what is left
        return bytes(block)


class _CountingReader:
    """Counts the bytes tarfile reads and hands each piece to `tap` (the compressor, when saving)."""

    def __init__(self, reader, tap=None):
        self._reader = reader
        self._tap = tap
        self.size = 0

    def read(self, size=-1):
        block = self._reader.read(READ_PIECE if size is None or size < 0 else size)
        self.size += len(block)
        if block and self._tap is not None:
            self._tap(block)
        return block

    def drain(self):
        while self.read(READ_PIECE):
            pass


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's header parsing, refusing what only a crafted archive holds.

    A negative size or an extended header of megabytes is refused before tarfile acts on it,
    and a damaged header after the first is an error rather than a silent end of the archive.
    """

    @classmethod
    def fromtarfile(cls, tarfile):  # pylint: disable=redefined-outer-name
        try:
            return super().fromtarfile(tarfile)
        except ENDING_HEADERS:
            raise
        except HeaderError as exc:  # truncated or invalid: after the first member tarfile would stop silently
            raise SubsequentHeaderError("%s at byte %d of the tar stream" % (exc, tarfile.offset)) from None

    def _proc_member(self, tarfile):  # pylint: disable=redefined-outer-name
        if self.size < 0:
            raise SubsequentHeaderError("member %r has a negative size (%d)" % (self.name[:100], self.size))
        if self.type in EXTENDED_TYPES and self.size > MAX_EXTENDED_HEADER:
            raise SubsequentHeaderError("an extended header of %d bytes (more than %d)" % (self.size, MAX_EXTENDED_HEADER))
        return super()._proc_member(tarfile)


class ArchiveIndex:
    """What read_archive found: ``files`` (name: bytes of the small JSON members), ``names`` (every
    member), ``oversized`` (name: size of wanted members too large to keep), ``size`` (tar bytes)."""

    def __init__(self):
        self.files = {}
        self.names = []
        self.oversized = {}
        self.size = 0


def is_layer_member(name):
    """Whether an archive member may be a layer: ``<id>/layer.tar`` (docker-archive) or a blob (OCI layout)."""
    return (name.endswith("/layer.tar") and name.count("/") == 1) or (name.startswith("blobs/sha256/") and name.count("/") == 2)


def _keep(archive, member, name, index, captured, on_layer=None):
    """Keep member `name`'s bytes in index.files when it is a small JSON document; return the total kept.

    `on_layer(name, size, handle, head)`, when given, reads each layer (a member that is not kept
    as JSON) from `handle`; `head` holds the bytes already read from it.
    """
    if on_layer is not None and member.isreg() and name.endswith("/layer.tar") and is_layer_member(name):
        on_layer(name, member.size, archive.extractfile(member), b"")
        return captured
    if not (member.isreg() and _wanted_member(name)):
        return captured
    if member.size > MAX_CAPTURED_MEMBER or captured + member.size > MAX_CAPTURED_TOTAL:
        index.oversized[name] = member.size
        if on_layer is not None and name.startswith("blobs/"):
            on_layer(name, member.size, archive.extractfile(member), b"")
        return captured
    handle = archive.extractfile(member)
    if name.startswith("blobs/"):
        first = handle.read(1)
        if first != b"{":
            if on_layer is not None:
                on_layer(name, member.size, handle, first)
            return captured  # a layer, not a JSON document
        data = first + handle.read(member.size - 1)
    else:
        data = handle.read(member.size)
    index.files[name] = data
    return captured + len(data)


def read_archive(reader, tap=None, on_layer=None):
    """Read a tar stream from `reader` (anything with read(n)) to its end; return its ArchiveIndex.

    Every byte read is also handed to `tap` when given, in order, including what follows the
    archive's end marker. `on_layer` (see _keep) reads the layers as they pass. Raises ArchiveError
    for anything that is not a whole, sane tar stream.
    """
    counting = _CountingReader(reader, tap)
    index = ArchiveIndex()
    captured = 0
    try:
        with tarfile.open(fileobj=counting, mode="r|", tarinfo=_BoundedTarInfo, bufsize=READ_PIECE) as archive:
            while True:
                member = archive.next()
                if member is None:
                    break
                archive.members = []  # tarfile keeps every member it read; only the names are needed here
                if len(index.names) >= MAX_MEMBERS:
                    raise ArchiveError("the tar stream has more than %d members: it is not an image archive" % MAX_MEMBERS)
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                index.names.append(name)
                captured = _keep(archive, member, name, index, captured, on_layer)
        counting.drain()
    except tarfile.ReadError as exc:
        text = str(exc)
        if text in ("empty file", "unexpected end of data") or "end of data" in text:
            raise ArchiveError("the tar stream ends early, after %d bytes: the archive is incomplete (%s)" % (counting.size, text)) from None
        raise ArchiveError("not a tar archive, or a damaged one: %s (after %d bytes)" % (text, counting.size)) from None
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError("the tar stream is damaged: %s (after %d bytes)" % (exc, counting.size)) from None
    except RecursionError:
        raise ArchiveError("the tar stream chains extended headers without end: it is damaged or crafted") from None
    index.size = counting.size
    if not index.names:
        raise ArchiveError("the tar stream holds no file at all (%d bytes)" % index.size)
    return index


def _loads(data, what):
    """JSON from archive bytes, or an ArchiveError naming `what`."""
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArchiveError("%s is not valid JSON: %s" % (what, exc)) from None
    except RecursionError:
        raise ArchiveError("%s nests its JSON too deeply to be read: it is damaged or crafted" % what) from None


def _expect(value, kind, what):
    if not isinstance(value, kind):
        raise ArchiveError("%s should be a JSON %s, not %s" % (what, "object" if kind is dict else "list", type(value).__name__))
    return value


def _json(files, name, what, oversized=None):
    if name not in files:
        if oversized and name in oversized:
            raise ArchiveError("%s in the archive has %d bytes, more than the %d bytes a %s can have" % (name, oversized[name], MAX_CAPTURED_MEMBER, what))
        raise ArchiveError("the archive has no %s (%s)" % (name, what))
    return _loads(files[name], "%s in the archive" % name)


def _blob_name(digest):
    algorithm, _separator, hexdigest = (digest or "").partition(":")
    return "blobs/%s/%s" % (algorithm, hexdigest)


def _config_digest_from_path(path):
    """The image config's digest from its archive path: ``<hex>.json`` or ``blobs/sha256/<hex>``."""
    base = path.rsplit("/", 1)[-1]
    if base.endswith(".json"):
        base = base[:-len(".json")]
    return "sha256:" + base


def _check_config(files, path, digest, oversized=None):
    data = files.get(path)
    if data is None:
        if oversized and path in oversized:
            raise ArchiveError("config %s in the archive has %d bytes, more than the %d bytes an image config can have"
                               % (path, oversized[path], MAX_CAPTURED_MEMBER))
        raise ArchiveError("the archive's manifest names config %s, which is not in the archive" % path)
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ArchiveError("config %s in the archive has digest %s, not the %s its name promises" % (path, actual, digest))
    return _expect(_loads(data, "config %s in the archive" % path), dict, "config %s in the archive" % path)


def _strings(value, what):
    value = _expect(value or [], list, what)
    if not all(isinstance(item, str) for item in value):
        raise ArchiveError("%s should list strings only" % what)
    return value


def _oci_images(files, oversized=None):
    """{config digest: {manifest_digest, names}} from index.json; nested indexes resolve to their first manifest."""
    index = _expect(_json(files, "index.json", "OCI layout index", oversized), dict, "index.json in the archive")
    found = {}
    for descriptor in _expect(index.get("manifests") or [], list, "manifests in index.json"):
        descriptor = _expect(descriptor, dict, "a descriptor in index.json")
        digest = descriptor.get("digest")
        annotations = _expect(descriptor.get("annotations") or {}, dict, "annotations in index.json")
        names = []
        if isinstance(annotations.get("io.containerd.image.name"), str) and annotations["io.containerd.image.name"]:
            names.append(image_ref.familiar(annotations["io.containerd.image.name"]))
        target = descriptor
        document = None
        for _depth in range(4):
            if not isinstance(target.get("digest"), str):
                break
            name = _blob_name(target["digest"])
            if name not in files:
                break
            document = _expect(_loads(files[name], "blob %s in the archive" % name), dict, "blob %s in the archive" % name)
            if target.get("mediaType") in OCI_INDEX_TYPES or "manifests" in document:
                children = _expect(document.get("manifests") or [], list, "manifests in blob %s" % name)
                if not children:
                    document = None
                    break
                target = _expect(children[0], dict, "a descriptor in blob %s" % name)
                continue
            break
        config = _expect((document or {}).get("config") or {}, dict, "the config descriptor of %s" % digest)
        key = config.get("digest") or digest
        if not isinstance(key, str):
            raise ArchiveError("a descriptor in index.json has no digest")
        image = found.setdefault(key, {"manifest_digest": digest, "names": []})
        image["names"] += [name for name in names if name not in image["names"]]
    return found


def describe_archive(files, oversized=None):
    """Describe every image in an archive from its captured members; returns (images, layout).

    Each image: config_digest, manifest_digest (None for a docker-archive), repo_tags, os,
    architecture, variant, layers (count). layout: ``docker-archive``, ``oci`` or
    ``oci+docker-archive``. `oversized` (from ArchiveIndex) lets messages say a member was too large.
    """
    try:
        return _describe(files, oversized)
    except (AttributeError, TypeError, KeyError) as exc:
        # every shape is checked on the way; this is the net under what a crafted JSON might still reach
        raise ArchiveError("the archive's JSON documents do not have the shape of an image archive (%s: %s)" % (type(exc).__name__, exc)) from None


def _describe(files, oversized):
    present = set(files) | set(oversized or {})
    has_docker = "manifest.json" in present
    has_oci = "index.json" in present
    if not has_docker and not has_oci:
        raise ArchiveError("the archive has neither manifest.json (docker-archive) nor index.json (OCI layout): it is not an image archive")
    oci = _oci_images(files, oversized) if has_oci else {}
    images = []
    if has_docker:
        manifest = _json(files, "manifest.json", "docker-archive manifest", oversized)
        if not isinstance(manifest, list):
            raise ArchiveError("manifest.json in the archive is not a list of images")
        for item in manifest:
            item = _expect(item, dict, "an image in manifest.json")
            config_path = item.get("Config") or ""
            if not isinstance(config_path, str):
                raise ArchiveError("an image in manifest.json has a Config that is not a file name: %r" % (config_path,))
            digest = _config_digest_from_path(config_path)
            config = _check_config(files, config_path, digest, oversized)
            from_oci = oci.pop(digest, {})
            tags = list(_strings(item.get("RepoTags"), "RepoTags in manifest.json"))
            tags += [name for name in from_oci.get("names", []) if name not in tags and "@" not in name]
            images.append(_image(digest, from_oci.get("manifest_digest"), tags, config, len(_strings(item.get("Layers"), "Layers in manifest.json"))))
    for digest, from_oci in oci.items():
        config = _check_config(files, _blob_name(digest), digest, oversized) if digest.startswith("sha256:") else {}
        rootfs = _expect(config.get("rootfs") or {}, dict, "rootfs in config %s" % digest)
        layers = len(_expect(rootfs.get("diff_ids") or [], list, "diff_ids in config %s" % digest))
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
