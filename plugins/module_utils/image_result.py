# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One per-image result shape for every image module: ``images`` items (docs/bundle-format.md, contract C2)."""

from __future__ import annotations

# What a task did for an image, or in check mode what a real run would do.
ACTIONS = ("saved", "loaded", "pulled", "pushed", "tagged", "unchanged", "verified", "listed")
# The actions that change something: a module is changed iff one of its items has one of these.
CHANGING_ACTIONS = ("saved", "loaded", "pulled", "pushed", "tagged")
BASE_KEYS = ("reference", "references", "image_id", "action", "bytes")


def image_result(reference, references, image_id, action, bytes_moved, **extra):
    """One ``images`` item: reference, references, image_id, action, bytes, then the module's own `extra` keys."""
    if action not in ACTIONS:
        raise ValueError("action %r is not one of %s" % (action, ", ".join(ACTIONS)))
    clash = sorted(set(extra) & set(BASE_KEYS))
    if clash:
        raise ValueError("extra keys %s would hide the common ones" % ", ".join(clash))
    item = {"reference": reference, "references": list(references), "image_id": image_id, "action": action, "bytes": int(bytes_moved)}
    item.update(extra)
    return item


def any_changed(items):
    """Whether some item's action changed something (the module-level ``changed``)."""
    return any(item["action"] in CHANGING_ACTIONS for item in items)
