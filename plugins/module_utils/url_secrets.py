# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Passwords inside URLs (proxy URLs in daemon.json, the drop-in, dockerd's messages): find them, mask them.

Pure functions; every text daemon_config shows (messages, diffs, results) goes through them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

# A URL inside text: the scheme, then everything up to white space or a quote. Its userinfo is
# what comes before the LAST '@' (a password may hold '@', ':', '/'); the user ends at the first ':'.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s\"'<>]*)")
MASK = "xxxxx"


def _split_userinfo(rest):
    """(user, password, after the '@') of what follows scheme://, or None without a password."""
    userinfo, at, after = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    user, dummy, password = userinfo.partition(":")
    return user, password, after


def mask_url(text):
    """Hide the password in any scheme://user:password@host inside text."""
    if not isinstance(text, str):
        return text

    def hide(match):
        parts = _split_userinfo(match.group("rest"))
        if parts is None:
            return match.group(0)
        return "%s%s:%s@%s" % (match.group("scheme"), parts[0], MASK, parts[2])
    return _URL.sub(hide, text)


def url_password(url):
    """The password inside scheme://user:password@host, or None."""
    match = _URL.search(url or "") if isinstance(url, str) else None
    parts = _split_userinfo(match.group("rest")) if match else None
    return parts[1] if parts and parts[1] else None


def passwords_in(value):
    """Every URL password inside a JSON value or text, also percent-decoded (dockerd may print either)."""
    found = set()
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, str):
            for match in _URL.finditer(node):
                parts = _split_userinfo(match.group("rest"))
                if parts and parts[1]:
                    found.update((parts[1], unquote(parts[1])))
    return found


def hide_secrets(text, secrets):
    """text with URL passwords masked and every known secret replaced (longest first)."""
    text = mask_url(text)
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask_credentials(value):
    """A copy of a JSON value with URL passwords hidden, for output and diffs."""
    if isinstance(value, dict):
        return dict((key, mask_credentials(item)) for key, item in value.items())
    if isinstance(value, list):
        return [mask_credentials(item) for item in value]
    return mask_url(value)
