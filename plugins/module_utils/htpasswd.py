# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bcrypt htpasswd files for the distribution registry, without re-hashing unchanged passwords.

The registry only accepts bcrypt entries (``$2a$``, ``$2b$``, ``$2y$``), hashed and checked with
the ``bcrypt`` package. The registry_deploy action plugin does it on the controller (bcrypt is in
its requirements), so a registry host needs no extra Python package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

try:
    import bcrypt as bcrypt_package
except ImportError:
    bcrypt_package = None

# The registry checks the password with bcrypt on every request (a pull is a dozen of them): on a
# 2-core lab machine cost 8 took 18 ms per request idle (30 ms under load), cost 10 63 ms (180 ms).
BCRYPT_ROUNDS = 8
MIN_ROUNDS, MAX_ROUNDS = 4, 14
# bcrypt reads at most 72 bytes of a password; longer ones are refused rather than cut silently.
MAX_PASSWORD_BYTES = 72
BCRYPT_HASH_RE = re.compile(r"^\$2[abxy]\$[0-9]{2}\$[./A-Za-z0-9]{53}$")
USER_NAME_RE = re.compile(r"^[^:\s]+$")


class HtpasswdError(Exception):
    """Bad users or an unusable htpasswd file; the message names the user or the line."""


class BcryptBackend:
    name = "bcrypt"

    def hash(self, password, rounds=BCRYPT_ROUNDS):
        return bcrypt_package.hashpw(password.encode("utf-8"), bcrypt_package.gensalt(rounds)).decode("ascii")

    def check(self, password, hashed):
        try:
            return bcrypt_package.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
        except ValueError:
            return False


def bcrypt_backend():
    """The bcrypt implementation; raises HtpasswdError when the Python package is missing here."""
    if bcrypt_package is None:
        raise HtpasswdError(
            "The Python package bcrypt is missing where the htpasswd file is computed (the Ansible controller, through the "
            "registry_deploy action): install it there (pip install bcrypt, see requirements/controller.txt; Debian: python3-bcrypt)."
        )
    return BcryptBackend()


def is_bcrypt_hash(hashed):
    return bool(BCRYPT_HASH_RE.match(hashed or ""))


def parse_htpasswd(text, source="htpasswd"):
    """Entries of an htpasswd file as an ordered dict name -> hash; blank and '#' lines are ignored."""
    entries = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, hashed = stripped.partition(":")
        if not sep or not name:
            raise HtpasswdError("%s line %d is not 'name:hash'" % (source, number))
        entries[name] = hashed
    return entries


def validate_users(users):
    """Check the users option: a list of {name, password}, unique names the htpasswd format can hold."""
    seen = set()
    for index, user in enumerate(users or []):
        if not isinstance(user, dict):
            raise HtpasswdError("users[%d] must be a dict with name and password" % index)
        name = user.get("name")
        password = user.get("password")
        if not isinstance(name, str) or not USER_NAME_RE.match(name):
            raise HtpasswdError("users[%d]: name %r must be a non-empty string without ':' or whitespace" % (index, name))
        if name in seen:
            raise HtpasswdError("users: %s is listed more than once" % name)
        seen.add(name)
        if not isinstance(password, str) or not password:
            raise HtpasswdError("users: %s has an empty password" % name)
        if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
            raise HtpasswdError("users: the password of %s is longer than %d bytes, which bcrypt cannot hold" % (name, MAX_PASSWORD_BYTES))
        if "\n" in password or "\r" in password:
            raise HtpasswdError("users: the password of %s contains a line break" % name)


@dataclass
class HtpasswdPlan:
    """The htpasswd content to have, and what differs from the file as it is."""

    content: str
    added: list = field(default_factory=list)
    password_changed: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)

    @property
    def users_changed(self):
        return bool(self.added or self.password_changed or self.removed)


def plan_htpasswd(users, existing_text, backend, source="htpasswd", rounds=BCRYPT_ROUNDS):
    """Compute the file for `users`, keeping the existing hash of every password that still matches it.

    A user whose stored entry is not bcrypt (the registry ignores those) is hashed again. `rounds`
    applies to new hashes only: a kept hash keeps its cost.
    """
    validate_users(users)
    if not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
        raise HtpasswdError("bcrypt_cost %s is out of range (%d-%d)" % (rounds, MIN_ROUNDS, MAX_ROUNDS))
    existing = parse_htpasswd(existing_text or "", source)
    plan = HtpasswdPlan(content="")
    lines = []
    for user in users or []:
        name, password = user["name"], user["password"]
        current = existing.get(name)
        if current is not None and is_bcrypt_hash(current) and backend.check(password, current):
            lines.append("%s:%s" % (name, current))
            plan.unchanged.append(name)
            continue
        lines.append("%s:%s" % (name, backend.hash(password, rounds=rounds)))
        (plan.password_changed if current is not None else plan.added).append(name)
    wanted = {user["name"] for user in users or []}
    plan.removed = [name for name in existing if name not in wanted]
    plan.content = "".join(line + "\n" for line in lines)
    return plan


def plan_of_contents(before_text, content):
    """The HtpasswdPlan that turns the file `before_text` into `content` (planned elsewhere, by plan_htpasswd)."""
    before, after = parse_htpasswd(before_text or ""), parse_htpasswd(content)
    plan = HtpasswdPlan(content=content)
    for name, hashed in after.items():
        (plan.added if name not in before else plan.unchanged if before[name] == hashed else plan.password_changed).append(name)
    plan.removed = [name for name in before if name not in after]
    return plan
