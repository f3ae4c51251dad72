"""The one per-image result shape (image_result.py) every image module returns."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.images.plugins.module_utils.image_result import ACTIONS, CHANGING_ACTIONS, any_changed, image_result


def test_an_item_has_the_common_keys_first_then_the_module_extras():
    item = image_result("nginx", ("nginx", "nginx:latest"), "sha256:" + "a" * 64, "saved", 1234, file="blobs/sha256/x")
    assert list(item) == ["reference", "references", "image_id", "action", "bytes", "file"]
    assert item["references"] == ["nginx", "nginx:latest"] and item["bytes"] == 1234


def test_unknown_actions_and_hidden_common_keys_are_refused():
    with pytest.raises(ValueError, match="action 'written' is not one of saved, loaded"):
        image_result("nginx", ["nginx"], None, "written", 0)
    with pytest.raises(ValueError, match="extra keys bytes would hide the common ones"):
        image_result("nginx", ["nginx"], None, "saved", 0, bytes=3)


def test_changed_is_true_iff_some_item_changed_something():
    assert set(CHANGING_ACTIONS) < set(ACTIONS)
    unchanged = [image_result("a", ["a"], None, action, 0) for action in ("unchanged", "verified", "listed")]
    assert not any_changed(unchanged) and not any_changed([])
    for action in CHANGING_ACTIONS:
        assert any_changed(unchanged + [image_result("b", ["b"], None, action, 0)])
