# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bcrypt htpasswd files for the distribution registry, without re-hashing unchanged passwords.

The registry only accepts bcrypt entries (``$2a$``, ``$2b$``, ``$2y$``). Hashing uses the
``bcrypt`` Python package when the host has it, and otherwise the system's libcrypt (libxcrypt,
present on every Debian system), which implements the same algorithm: a registry host needs no
extra Python package for this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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
# OpenBSD's own bcrypt test vector: proves a backend really implements bcrypt.
SELF_TEST = (b"U*U", b"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")


class HtpasswdError(Exception):
    """Bad users or an unusable htpasswd file; the message names the user or the line."""


class BcryptPackageBackend:
    name = "bcrypt"

    def hash(self, password, rounds=BCRYPT_ROUNDS):
        return bcrypt_package.hashpw(password.encode("utf-8"), bcrypt_package.gensalt(rounds)).decode("ascii")

    def check(self, password, hashed):
        try:
            return bcrypt_package.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
        except ValueError:
            return False


class LibcryptBackend:
    """bcrypt through libxcrypt's crypt() and crypt_gensalt_rn(), loaded with ctypes."""

    name = "libcrypt"

    def __init__(self, library=None):
        path = library or ctypes.util.find_library("crypt")
        if not path:
            raise OSError("libcrypt not found")
        lib = ctypes.CDLL(path)
        self._crypt = lib.crypt
        self._crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        self._crypt.restype = ctypes.c_char_p
        self._gensalt = lib.crypt_gensalt_rn
        self._gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._gensalt.restype = ctypes.c_char_p

    def _crypt_text(self, password, setting):
        result = self._crypt(password, setting)
        # libxcrypt answers an unsupported or invalid setting with NULL or a string starting with '*'.
        if not result or result.startswith(b"*"):
            return None
        return result.decode("ascii")

    def hash(self, password, rounds=BCRYPT_ROUNDS):
        output = ctypes.create_string_buffer(64)
        # Null random bytes: libxcrypt reads them from the operating system.
        setting = self._gensalt(b"$2b$", rounds, None, 0, output, len(output))
        if not setting:
            raise HtpasswdError("libcrypt could not make a bcrypt salt")
        hashed = self._crypt_text(password.encode("utf-8"), setting)
        if hashed is None:
            raise HtpasswdError("libcrypt refused to compute a bcrypt hash")
        return hashed

    def check(self, password, hashed):
        computed = self._crypt_text(password.encode("utf-8"), hashed.encode("ascii"))
        return computed is not None and computed == hashed


def _works(backend):
    try:
        return backend.check(SELF_TEST[0].decode("ascii"), SELF_TEST[1].decode("ascii"))
    except (OSError, AttributeError, ValueError, HtpasswdError):
        return False


def available_backend():
    """The bcrypt implementation to use; raises HtpasswdError when the host has none."""
    candidates = []
    if bcrypt_package is not None:
        candidates.append(BcryptPackageBackend)
    candidates.append(LibcryptBackend)
    for factory in candidates:
        try:
            backend = factory()
        except (OSError, AttributeError):
            continue
        if _works(backend):
            return backend
    raise HtpasswdError(
        "No bcrypt implementation on this host: neither the Python package bcrypt (Debian: python3-bcrypt) "
        "nor a libcrypt with bcrypt support (Debian: libcrypt1) is available. Install one of them."
    )


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
