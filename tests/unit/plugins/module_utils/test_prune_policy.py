"""prune_policy: which images a host may lose, and the bytes that frees (pure logic, no engine)."""

from __future__ import annotations

import pytest

from ansible_collections.fleet.images.plugins.module_utils import prune_policy
from ansible_collections.fleet.images.plugins.module_utils.image_archive import fingerprint_from_inspect

NOW = 1_800_000_000.0
DIFF = ["sha256:" + ("%x" % number) * 64 for number in range(1, 6)]


def attrs(image_id, tags=(), layers=(0,), created="2027-01-15T08:00:00Z", parent="", digests=()):
    return {"Id": image_id, "RepoTags": list(tags), "RepoDigests": list(digests), "Created": created, "Parent": parent, "Size": 10,
            "RootFS": {"Layers": [DIFF[index] for index in layers]}, "Os": "linux", "Architecture": "amd64", "Config": {"Cmd": ["x"]}}


def image(image_id, tags=(), layers=(0,), sizes=None, **more):
    return prune_policy.describe_image(attrs(image_id, tags, layers, **more), sizes or [100] * len(layers))


def policy(**more):
    base = {"keep_images": [], "keep_names": set(), "repositories": ["*"], "dangling": True, "keep_newest": 0,
            "keep_newer_than": None, "keep_newer_than_text": None}
    base.update(more)
    return base


@pytest.mark.parametrize("text, seconds", [("600", 600), ("90m", 5400), ("36h", 129600), ("7d", 604800), ("2w", 1209600), (None, None)])
def test_ages(text, seconds):
    assert prune_policy.parse_age(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-1h", "1y", "1.5h", "h"])
def test_a_bad_age_is_refused_naming_it(text):
    with pytest.raises(prune_policy.PolicyError, match="keep_newer_than %r is not an age" % text):
        prune_policy.parse_age(text)


@pytest.mark.parametrize("count, history, sizes", [
    (2, [10, 20], [10, 20]),                 # one history entry per layer
    (2, [10, 0, 0, 20], [10, 20]),           # steps that made no layer (ENV, CMD) have size 0
    (3, [10, 0, 20], [10, 0, 20]),           # a layer of size 0: as many entries as layers
    (3, [10, 0, 0, 20], [10, 0, 20]),        # ambiguous: only the size-0 layer may be misplaced, and it counts 0
    (2, [], [0, 0]),                          # no history at all
])
def test_layer_sizes_follow_the_history(count, history, sizes):
    assert prune_policy.layer_sizes(count, history) == sizes


def test_chain_ids_are_the_engines_layer_ids():
    chains = prune_policy.chain_ids(DIFF[:2])
    assert chains[0] == DIFF[0]
    assert chains[1] == "sha256:" + __import__("hashlib").sha256(("%s %s" % (DIFF[0], DIFF[1])).encode()).hexdigest()


def test_a_container_keeps_its_image_before_every_other_rule():
    images = [image("sha256:a", ["app:1"])]
    reasons = prune_policy.decide(images, policy(keep_newest=1), {"sha256:a": "web (stopped)"}, NOW)
    assert reasons == {"sha256:a": "in use by container web (stopped)"}


def test_a_bundle_entry_keeps_its_image_by_id_or_by_fingerprint():
    by_id = image("sha256:a", ["app:1"])
    by_fingerprint = image("sha256:b", ["app:2"], layers=(1,))
    entries = [{"references": ["app:1"], "config_digest": "sha256:a"},
               {"references": ["app:2"], "image_id": "sha256:other", "config_fingerprint": fingerprint_from_inspect(by_fingerprint["attrs"])}]
    reasons = prune_policy.decide([by_id, by_fingerprint, image("sha256:c", ["app:3"])], policy(keep_images=entries), {}, NOW)
    assert reasons == {"sha256:a": "an image of the bundle (app:1)", "sha256:b": "an image of the bundle (app:2)", "sha256:c": None}


def test_a_version_2_entry_keeps_its_image():
    entry = {"references": ["app:1"], "image_id": "sha256:a", "manifest": {"digest": "sha256:m", "size": 1}, "config": {"digest": "sha256:a"},
             "layers": [], "manifest_digest": "sha256:m"}
    prune_policy.check_keep_entry(entry, 0)
    assert prune_policy.decide([image("sha256:a", ["app:1"])], policy(keep_images=[entry]), {}, NOW)["sha256:a"].startswith("an image")


def test_retention_counts_images_per_repository_and_an_image_in_two_repositories_is_kept_by_either():
    images = [image("sha256:%d" % number, ["app:%d" % number], created="2027-01-15T08:00:0%dZ" % number) for number in range(1, 4)]
    images.append(image("sha256:9", ["app:0", "other:1"], created="2027-01-15T07:00:00Z"))
    reasons = prune_policy.decide(images, policy(keep_newest=2), {}, NOW)
    assert reasons["sha256:3"] == reasons["sha256:2"] == "one of the 2 newest images of app"
    assert reasons["sha256:1"] is None
    assert reasons["sha256:9"] == "one of the 2 newest images of other"


def test_age_scope_dangling_and_parents():
    young = image("sha256:y", ["app:y"], created="2027-01-15T07:59:00Z")
    old = image("sha256:o", ["app:o"], created="2020-01-01T00:00:00Z")
    outside = image("sha256:x", ["team/x:1", "app:x"])
    dangling = image("sha256:d")
    parent = image("sha256:p", ["base:1"], created="2020-01-01T00:00:00Z")
    child = image("sha256:c", ["team/child:1"], parent="sha256:p")
    now = prune_policy._seconds("2027-01-15T08:00:00Z")
    reasons = prune_policy.decide([young, old, outside, dangling, parent, child],
                                  policy(repositories=["app", "base"], dangling=False, keep_newer_than=3600, keep_newer_than_text="1h"), {}, now)
    assert reasons == {"sha256:y": "newer than 1h", "sha256:o": None, "sha256:x": "its repository team/x is outside repositories",
                       "sha256:d": "untagged, and dangling is false", "sha256:c": "its repository team/child is outside repositories",
                       "sha256:p": "parent of the kept image team/child:1"}


def test_freed_bytes_count_layers_no_remaining_image_uses_once():
    shared_base = image("sha256:a", ["app:1"], layers=(0, 1), sizes=[100, 10])
    same_base = image("sha256:b", ["app:2"], layers=(0, 2), sizes=[100, 20])
    kept = image("sha256:k", ["keep:1"], layers=(0,), sizes=[100])
    assert prune_policy.freed_bytes([shared_base, same_base, kept], {"sha256:a", "sha256:b"}) == {"sha256:a": 10, "sha256:b": 20}
    assert prune_policy.freed_bytes([shared_base, same_base], {"sha256:a", "sha256:b"}) == {"sha256:a": 110, "sha256:b": 20}
    # a layer's ID is its chain: the same diff on another base is another layer
    other_base = image("sha256:c", ["app:3"], layers=(3, 1), sizes=[5, 10])
    assert prune_policy.freed_bytes([shared_base, other_base], {"sha256:c"}) == {"sha256:c": 15}


def test_a_keep_entry_without_identity_is_refused():
    with pytest.raises(prune_policy.PolicyError, match=r"keep_images\[2\] \(app:1\) records no image identity"):
        prune_policy.check_keep_entry({"references": ["app:1"]}, 2)
