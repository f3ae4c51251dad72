"""bcrypt htpasswd handling: the bcrypt package, and a plan that never re-hashes an unchanged password."""

from __future__ import annotations

import bcrypt
import pytest

from ansible_collections.fleet.images.plugins.module_utils import htpasswd
from ansible_collections.fleet.images.plugins.module_utils.htpasswd import (
    BcryptBackend,
    HtpasswdError,
    bcrypt_backend,
    is_bcrypt_hash,
    parse_htpasswd,
    plan_htpasswd,
    validate_users,
)

# OpenBSD's own bcrypt test vector.
OPENBSD_VECTOR = ("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")


class CountingBackend:
    """Wraps a real backend and counts how often it hashes, to prove what was left alone."""

    def __init__(self, inner):
        self.inner = inner
        self.hashed = []

    def hash(self, password, rounds=htpasswd.BCRYPT_ROUNDS):
        self.hashed.append(password)
        self.rounds = rounds
        # Cheapest cost, to keep the tests fast; test_new_hashes_use_the_requested_cost checks the cost.
        return self.inner.hash(password, rounds=4)

    def check(self, password, hashed):
        return self.inner.check(password, hashed)


@pytest.fixture
def backend():
    return CountingBackend(BcryptBackend())


def test_bcrypt_passes_the_openbsd_vector():
    password, expected = OPENBSD_VECTOR
    assert bcrypt_backend().check(password, expected)
    assert not bcrypt_backend().check("U*V", expected)


def test_hashes_are_bcrypt_at_the_cost_asked():
    hashed = bcrypt_backend().hash("pässwörd", rounds=4)
    assert is_bcrypt_hash(hashed), hashed
    assert hashed.startswith("$2b$04$")
    assert bcrypt_backend().check("pässwörd", hashed)
    assert not bcrypt_backend().check("password", hashed)


def test_no_bcrypt_package_is_an_actionable_error(monkeypatch):
    monkeypatch.setattr(htpasswd, "bcrypt_package", None)
    with pytest.raises(HtpasswdError, match="pip install bcrypt.*python3-bcrypt"):
        bcrypt_backend()


def test_first_plan_hashes_every_user(backend):
    plan = plan_htpasswd([{"name": "ci", "password": "one"}, {"name": "nodes", "password": "two"}], None, backend)
    assert plan.added == ["ci", "nodes"]
    assert backend.hashed == ["one", "two"]
    entries = parse_htpasswd(plan.content)
    assert list(entries) == ["ci", "nodes"]
    assert backend.check("one", entries["ci"]) and backend.check("two", entries["nodes"])
    assert plan.content.endswith("\n")


def test_unchanged_passwords_keep_their_hash_byte_for_byte(backend):
    users = [{"name": "ci", "password": "one"}, {"name": "nodes", "password": "two"}]
    first = plan_htpasswd(users, None, backend)
    backend.hashed.clear()
    second = plan_htpasswd(users, first.content, backend)
    assert second.content == first.content
    assert backend.hashed == []
    assert second.unchanged == ["ci", "nodes"] and not second.users_changed


def test_only_the_changed_password_is_hashed_again(backend):
    first = plan_htpasswd([{"name": "ci", "password": "one"}, {"name": "nodes", "password": "two"}], None, backend)
    backend.hashed.clear()
    second = plan_htpasswd([{"name": "ci", "password": "one"}, {"name": "nodes", "password": "three"}], first.content, backend)
    assert backend.hashed == ["three"]
    assert second.password_changed == ["nodes"] and second.unchanged == ["ci"]
    assert parse_htpasswd(second.content)["ci"] == parse_htpasswd(first.content)["ci"]
    assert backend.check("three", parse_htpasswd(second.content)["nodes"])


def test_users_no_longer_listed_are_removed(backend):
    first = plan_htpasswd([{"name": "ci", "password": "one"}, {"name": "old", "password": "x"}], None, backend)
    second = plan_htpasswd([{"name": "ci", "password": "one"}], first.content, backend)
    assert second.removed == ["old"]
    assert list(parse_htpasswd(second.content)) == ["ci"]
    assert second.users_changed


@pytest.mark.parametrize(
    "stored",
    ["{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "$apr1$abc$0123456789abcdefghijkl", "plaintext"],
    ids=["sha1", "md5-apr1", "plain"],
)
def test_entries_the_registry_would_ignore_are_hashed_with_bcrypt(backend, stored):
    plan = plan_htpasswd([{"name": "ci", "password": "password"}], "ci:%s\n" % stored, backend)
    assert plan.password_changed == ["ci"]
    assert is_bcrypt_hash(parse_htpasswd(plan.content)["ci"])


def test_a_2y_file_like_apache_htpasswd_writes_is_kept(backend):
    # `htpasswd -B` writes $2y$ entries at cost 5; the hash below is made the same way with a fixed salt.
    hashed = bcrypt.hashpw(b"password", b"$2y$05$abcdefghijklmnopqrstuu").decode("ascii")
    assert hashed.startswith("$2y$05$")
    existing = "# written by hand before\n\nci:%s\n" % hashed
    plan = plan_htpasswd([{"name": "ci", "password": "password"}], existing, backend)
    assert backend.hashed == []
    assert plan.content == "ci:%s\n" % hashed
    assert plan.unchanged == ["ci"]


def test_new_hashes_use_the_requested_cost():
    plan = plan_htpasswd([{"name": "ci", "password": "x"}], None, bcrypt_backend(), rounds=6)
    assert parse_htpasswd(plan.content)["ci"].startswith("$2b$06$")


def test_the_default_cost_reaches_the_backend(backend):
    plan_htpasswd([{"name": "ci", "password": "x"}], None, backend)
    assert backend.rounds == htpasswd.BCRYPT_ROUNDS == 8


@pytest.mark.parametrize("rounds", [3, 15])
def test_a_cost_out_of_range_is_refused(backend, rounds):
    with pytest.raises(HtpasswdError, match="bcrypt_cost %d is out of range" % rounds):
        plan_htpasswd([{"name": "ci", "password": "x"}], None, backend, rounds=rounds)


def test_parse_names_the_broken_line():
    with pytest.raises(HtpasswdError, match="/etc/x/htpasswd line 2 is not 'name:hash'"):
        parse_htpasswd("ci:$2b$xx\nbroken\n", "/etc/x/htpasswd")


@pytest.mark.parametrize(
    "users, message",
    [
        ([{"name": "a:b", "password": "x"}], "name 'a:b' must be a non-empty string without ':'"),
        ([{"name": "a b", "password": "x"}], "without ':' or whitespace"),
        ([{"name": "", "password": "x"}], "name '' must be"),
        ([{"name": "ci", "password": "x"}, {"name": "ci", "password": "y"}], "ci is listed more than once"),
        ([{"name": "ci", "password": ""}], "ci has an empty password"),
        ([{"name": "ci", "password": "é" * 37}], "longer than 72 bytes"),
        ([{"name": "ci", "password": "a\nb"}], "contains a line break"),
        (["ci"], r"users\[0\] must be a dict"),
    ],
    ids=["colon", "space", "empty-name", "duplicate", "empty-password", "too-long", "newline", "not-a-dict"],
)
def test_bad_users_are_refused_naming_the_user(users, message):
    with pytest.raises(HtpasswdError, match=message):
        validate_users(users)


def test_seventy_two_bytes_is_still_accepted():
    validate_users([{"name": "ci", "password": "x" * 72}])


def test_bcrypt_hash_shape():
    assert is_bcrypt_hash(OPENBSD_VECTOR[1])
    assert not is_bcrypt_hash("$2b$10$short")
    assert not is_bcrypt_hash("")
    assert not is_bcrypt_hash(None)


def test_the_plan_the_module_reads_back_from_the_two_texts(backend):
    first = plan_htpasswd([{"name": "ci", "password": "one"}, {"name": "old", "password": "x"}], None, backend)
    second = plan_htpasswd([{"name": "ci", "password": "two"}, {"name": "new", "password": "y"}], first.content, backend)
    again = htpasswd.plan_of_contents(first.content, second.content)
    assert (again.added, again.password_changed, again.removed, again.content) == (["new"], ["ci"], ["old"], second.content)
    assert htpasswd.plan_of_contents(None, first.content).added == ["ci", "old"]
