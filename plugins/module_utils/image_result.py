# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one per-image result item every image module returns in its `images` list."""

from __future__ import annotations

# unchanged: nothing needed; verified/listed: bundle_info with/without verify; removed/kept: image_prune.
ACTIONS = ("saved", "loaded", "pulled", "pushed", "tagged", "unchanged", "verified", "listed", "removed", "kept")


def image_result(reference, references, image_id, action, bytes_moved, **extra):
    """One `images` item: reference, references, image_id, action, bytes, then the module's own keys."""
    if action not in ACTIONS:
        raise ValueError("action %r is not one of %s" % (action, ", ".join(ACTIONS)))
    item = {"reference": reference, "references": list(references), "image_id": image_id, "action": action, "bytes": int(bytes_moved)}
    item.update(extra)
    return item
