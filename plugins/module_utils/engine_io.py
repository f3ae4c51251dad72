# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Talking to one Docker Engine about images: inspect, pull, tag, load a stream, measure its disk.

Shared by image_save, image_load and image_pull (bundle_save.py, bundle_load.py, registry_pull.py).
Every failure is a TransferError whose message names the engine, the image or file, and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import re
import socket
import struct

from ansible.module_utils.common.text.formatters import bytes_to_human

try:
    from docker.errors import APIError, NotFound
except ImportError:  # the modules report the missing SDK through docker_client.connect
    class APIError(Exception):
        """Stands in for docker.errors.APIError when the SDK is missing."""

    class NotFound(APIError):
        """Stands in for docker.errors.NotFound when the SDK is missing."""

try:
    from requests.exceptions import RequestException
    from urllib3.exceptions import HTTPError as Urllib3Error
except ImportError:  # the modules report the missing SDK through docker_client.connect
    RequestException = Urllib3Error = OSError

from ansible_collections.fleet.images.plugins.module_utils import reference as image_ref
from ansible_collections.fleet.images.plugins.module_utils.compression import CompressionError, iter_chunks, open_decompressed

# Pieces sent to the engine's load API: small enough that reading, decompressing and the engine's
# unpacking overlap (4 MiB pieces measured about 20 % slower on two busy cores).
LOAD_CHUNK = 256 * 1024
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class TransferError(Exception):
    """An image could not be saved or loaded; the message names the image or file and the reason."""


def engine_gone(engine_name, doing, exc):
    """The sentence for an engine that stopped answering in the middle of `doing`."""
    detail = re.sub(r"\s+", " ", str(exc)).strip() or type(exc).__name__
    return ("the Docker Engine %s stopped answering while %s (%s): it stopped, restarted or crashed. "
            "Check that it runs (systemctl status docker, journalctl -u docker), then run the task again"
            % (engine_name, doing, detail))


def no_space_hint(text):
    return ("; the disk is full: free space there (docker image prune, or remove files) and run the task again"
            if "no space left on device" in text.lower() else "")


@contextlib.contextmanager
def no_read_timeout(client):
    """Long transfers: the engine may work for minutes before its first byte (save) or its answer (load)."""
    previous = client.api.timeout
    client.api.timeout = None
    try:
        yield
    finally:
        client.api.timeout = previous


def inspect_image(client, name):
    """The engine's inspect dict for `name`, or None when it has no such image."""
    try:
        return client.api.inspect_image(name)
    except NotFound:
        return None
    except APIError as exc:
        if getattr(exc, "status_code", None) in (400, 404):
            return None
        raise TransferError("the Docker Engine failed to inspect image %s: %s" % (name, getattr(exc, "explanation", None) or exc)) from exc


def platform_of(attrs):
    parts = [attrs.get("Os") or "", attrs.get("Architecture") or ""]
    if attrs.get("Variant"):
        parts.append(attrs["Variant"])
    return "/".join(parts)


def platform_matches(attrs, platform):
    """Whether an image's os/architecture[/variant] is the wanted `platform` (None matches anything)."""
    if not platform:
        return True
    wanted = platform.lower().split("/")
    have = platform_of(attrs).lower().split("/")
    return have[:len(wanted)] == wanted


def pull_image(client, reference, platform, engine_name="the engine", auth=None):
    """Pull through the engine and return the layer bytes it downloaded; raise TransferError with the engine's own words when it fails."""
    kwargs = {"stream": True, "decode": True}
    downloaded = {}
    if platform:
        kwargs["platform"] = platform
    if auth:
        kwargs["auth_config"] = auth
    try:
        with no_read_timeout(client):
            for event in client.api.pull(reference, **kwargs):
                if isinstance(event, dict) and event.get("error"):
                    raise TransferError("pulling %s failed: %s%s" % (reference, event["error"], no_space_hint(event["error"])))
                if isinstance(event, dict) and event.get("status") in ("Downloading", "Extracting"):
                    # a small layer may skip "Downloading"; "Extracting" reports the same blob size
                    downloaded[event.get("id")] = max(downloaded.get(event.get("id"), 0), (event.get("progressDetail") or {}).get("total") or 0)
    except APIError as exc:
        raise TransferError("pulling %s failed: %s" % (reference, getattr(exc, "explanation", None) or exc)) from exc
    # the engine went away mid-stream: requests' ConnectionError or ChunkedEncodingError ("Response ended
    # prematurely"), urllib3's ProtocolError, http.client's errors, a bare BrokenPipeError
    except (RequestException, Urllib3Error, http.client.HTTPException, OSError) as exc:
        raise TransferError(engine_gone(engine_name, "pulling %s" % reference, exc)) from None
    return sum(downloaded.values())


def restore_tags(client, image_id, tags):
    """Point every tag at `image_id` (moving it from another image if needed); return the tags set."""
    done = []
    for tag in tags:
        current = inspect_image(client, tag)
        if current is not None and current.get("Id") == image_id:
            continue
        repository, name = image_ref.repository_and_tag(tag)
        try:
            client.api.tag(image_id, repository, name, force=True)
        except APIError as exc:
            raise TransferError("the Docker Engine refused to tag %s as %s: %s" % (image_id, tag, getattr(exc, "explanation", None) or exc)) from exc
        done.append(tag)
    return done


def stream_into_engine(client, handle, label, engine_name="the engine"):
    """Decompress the open file `handle` (by content, from its start) into the engine's load API.

    The bytes sent are read from this one descriptor, the one that was hashed. Returns the engine's messages.
    """
    handle.seek(0)
    try:
        return stream_chunks_into_engine(client, iter_chunks(open_decompressed(handle, label=label), LOAD_CHUNK), label, engine_name)
    except CompressionError as exc:
        raise TransferError("%s could not be decompressed while loading: %s" % (label, exc)) from exc


def stream_chunks_into_engine(client, chunks, label, engine_name="the engine"):
    """Send the archive `chunks` yields into the engine's load API; return the engine's messages.

    An exception raised by `chunks` itself (the caller's reading) is the caller's to handle.
    """
    messages = []
    try:
        with no_read_timeout(client):
            for event in client.api.load_image(chunks) or []:
                if not isinstance(event, dict):
                    continue
                if event.get("error"):
                    detail = (event.get("errorDetail") or {}).get("message") or event["error"]
                    raise TransferError("the Docker Engine %s refused %s: %s%s" % (engine_name, label, detail, no_space_hint(detail)))
                if event.get("stream"):
                    messages.append(event["stream"].strip())
    except APIError as exc:
        detail = str(getattr(exc, "explanation", None) or exc)
        raise TransferError("the Docker Engine %s refused %s: %s%s" % (engine_name, label, detail, no_space_hint(detail))) from exc
    # the engine went away mid-stream: requests' ConnectionError or ChunkedEncodingError ("Response ended
    # prematurely"), urllib3's ProtocolError, http.client's errors, a bare BrokenPipeError
    except (RequestException, Urllib3Error, http.client.HTTPException, OSError) as exc:
        raise TransferError(engine_gone(engine_name, "loading %s" % label, exc)) from None
    return messages


def socket_path(docker_host):
    if docker_host and docker_host.startswith("unix://"):
        return docker_host[len("unix://"):]
    return None


def engine_data_root(docker_host, info):
    """(path to measure, None) for the engine's DockerRootDir as seen from here, or (None, why not).

    The engine's process is found through the unix socket's peer credentials, and its root
    directory through /proc/<pid>/root: that also measures an engine that runs in another mount
    namespace (a container with its own /var/lib/docker) correctly. A TCP or SSH engine's
    disk cannot be seen from here.
    """
    root_dir = info.get("DockerRootDir")
    path = socket_path(docker_host)
    if not root_dir:
        return None, "the engine did not report its DockerRootDir"
    if path is None:
        return None, "the engine %s is remote: its data root %s is not visible from this host" % (docker_host, root_dir)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer:
            peer.settimeout(5)
            peer.connect(path)
            pid = struct.unpack("3i", peer.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[0]
    except (OSError, AttributeError) as exc:
        return None, "the engine's process could not be identified through %s (%s)" % (path, exc)
    candidate = "/proc/%d/root%s" % (pid, root_dir) if pid > 0 else None
    if candidate and os.path.isdir(candidate):
        return candidate, None
    if pid > 0 and info.get("Name") == socket.gethostname() and os.path.isdir(root_dir):
        return root_dir, None
    return None, "the engine's data root %s is not visible from this host (no access to process %d's file system)" % (root_dir, pid)


def free_bytes(path):
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def space_shortfall(needed, free, keep_free):
    """None when `free` covers `needed` plus `keep_free`, else the sentence explaining the refusal."""
    if free - needed >= keep_free:
        return None
    return "needs about %d bytes (%s)%s, but %d bytes (%s) are free" % (
        needed, bytes_to_human(needed), " and keep_free asks to leave %d bytes (%s) free" % (keep_free, bytes_to_human(keep_free)) if keep_free else "",
        free, bytes_to_human(free))
