"""Make `ansible_collections.fleet.images` importable from this checkout for every test."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_ROOT = REPO_ROOT / ".build" / "collections"
COLLECTION_LINK = COLLECTIONS_ROOT / "ansible_collections" / "fleet" / "images"


def ensure_collection_link():
    """Point .build/collections/ansible_collections/fleet/images at the repository root."""
    if not COLLECTION_LINK.exists():
        COLLECTION_LINK.parent.mkdir(parents=True, exist_ok=True)
        COLLECTION_LINK.symlink_to(Path("..", "..", "..", ".."))


ensure_collection_link()
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
if str(REPO_ROOT) not in sys.path:
    # The lab package (python -m lab) lives at the repository root.
    sys.path.insert(0, str(REPO_ROOT))
