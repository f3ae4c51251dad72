# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The record of the bundles brought into a site registry, and which manifests it lets go (pure, plus one file).

The record is a JSON file on the registry host (root 0600, written atomically):
``{"version": 1, "bundles": [{"id": "sha256:...", "at": "...Z", "images": {"repo:tag": "sha256:<manifest>"}}],
"gc_pending": false}``, oldest bundle first. A bundle's ``id`` is the digest of its images (names and
manifest digests), so bringing the same bundle up again moves it to the end instead of adding it.
Only manifests that a recorded bundle pushed are ever deleted: images pushed by hand are never touched.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os

from ansible_collections.fleet.images.plugins.module_utils.atomic_file import atomic_write

RECORD_VERSION = 1
# Without deletion the record still remembers this many bundles (deletion trims it to what it keeps).
MAX_REMEMBERED = 50


class RecordError(Exception):
    """The record file is unusable; the message names it and what to do."""


def empty_record():
    return {"version": RECORD_VERSION, "bundles": [], "gc_pending": False}


def load_record(path):
    """The record at `path`, or an empty one when there is none yet."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        return empty_record()
    except (OSError, ValueError) as exc:
        raise RecordError("cannot read the record of bundles %s (%s): fix or remove it (removing it forgets which bundles "
                          "were brought up, so the next collection deletes nothing)" % (path, exc)) from exc
    bundles = data.get("bundles") if isinstance(data, dict) else None
    if not isinstance(bundles, list) or not all(isinstance(item, dict) and isinstance(item.get("images"), dict) for item in bundles):
        raise RecordError("the record of bundles %s is not one this collection wrote (no bundles list): fix or remove it" % path)
    data.setdefault("gc_pending", False)
    return data


def save_record(path, record):
    """Write the record atomically, root-only; returns whether the file changed."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    return atomic_write(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"), mode=0o600)


def bundle_id(images):
    """The identity of a bundle as pushed: the digest of its names and manifest digests."""
    return "sha256:" + hashlib.sha256(json.dumps(sorted(images.items())).encode("utf-8")).hexdigest()


def remember(record, images, now=None):
    """A copy of `record` with the bundle `images` ({name: digest}) as the newest one (moved there if known)."""
    identity = bundle_id(images)
    bundles = [item for item in record["bundles"] if item.get("id") != identity]
    if record["bundles"] and record["bundles"][-1].get("id") == identity:
        newest = record["bundles"][-1]
    else:
        at = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
        newest = {"id": identity, "at": at, "images": dict(images)}
    updated = dict(record)
    updated["bundles"] = (bundles + [newest])[-MAX_REMEMBERED:]
    return updated


def _repository(name):
    return name.rsplit(":", 1)[0]


def to_delete(record, keep):
    """[(name, repository, digest)] of the manifests the bundles before the `keep` newest pushed and none of those holds.

    A digest that a kept bundle holds in the same repository stays, whatever name it went under.
    """
    kept = {(_repository(name), digest) for item in record["bundles"][-keep:] for name, digest in item["images"].items()}
    chosen, seen = [], set()
    for item in record["bundles"][:-keep]:
        for name, digest in sorted(item["images"].items()):
            key = (_repository(name), digest)
            if digest and key not in kept and key not in seen:
                seen.add(key)
                chosen.append((name, key[0], digest))
    return chosen


def forget_dropped(record, keep):
    """A copy of `record` that remembers only the `keep` newest bundles."""
    updated = dict(record)
    updated["bundles"] = record["bundles"][-keep:]
    return updated
