# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The registry's HTTP API (distribution's /v2/), through one client: a requests Session.

registry_deploy's health probe and image_push's "does the registry hold it" both come here. TLS
is always verified: against the CA given (tls_ca), else against the host's trust store. Only what
the options say is used: no CA bundle, proxy or .netrc from the environment (REQUESTS_CA_BUNDLE
would otherwise silently replace the registry's CA).
"""

from __future__ import annotations

from ansible_collections.fleet.images.plugins.module_utils.registry import MANIFEST_ACCEPT, manifest_url

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry
except ImportError:
    requests = None
    HTTPAdapter = object
    Retry = None

API_TIMEOUT = 30
PROBE_TIMEOUT = 5
# Transient answers of a registry (or of a proxy in front of it) are asked again, reads only.
RETRY = dict(total=3, backoff_factor=0.5, status_forcelist=(502, 503, 504), allowed_methods=frozenset(["GET", "HEAD"]),
             raise_on_status=False)


class RegistryApiError(Exception):
    """The registry could not be asked, or refused; the message names the registry and what to do."""


class ChainOnlyAdapter(HTTPAdapter):
    """Verifies the certificate chain, not the host name: registry_deploy probes its registry on loopback, while its
    certificate names the names clients use."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["assert_hostname"] = False
        super().init_poolmanager(*args, **kwargs)


def api_session(ca_path=None, username=None, password=None, retries=True, check_hostname=True):
    """A requests Session for a registry's API, verifying TLS with `ca_path` (or the host's trust store)."""
    if requests is None:
        raise RegistryApiError("The Python package requests is missing on this host (Debian: python3-requests)")
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_path or True
    if username:
        session.auth = (username, password or "")
    adapter = (HTTPAdapter if check_hostname else ChainOnlyAdapter)(max_retries=Retry(**RETRY) if retries else 0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def is_certificate_error(exc):
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text


def probe(session, url):
    """HTTP status of GET url/v2/; raises requests' RequestException while the registry does not answer."""
    return session.get(url + "/v2/", timeout=PROBE_TIMEOUT).status_code


def failure_message(registry, exc, ca_path):
    if is_certificate_error(exc):
        return ("Cannot verify the TLS certificate of registry %s with %s: %s. Give the CA that signed it as tls_ca "
                "(or install it at /etc/docker/certs.d/%s/ca.crt)." % (registry, ca_path or "the system trust store", exc, registry))
    return "Cannot reach registry %s: %s" % (registry, exc)


def remote_digest(session, scheme, registry, repository, tag):
    """The manifest digest of repository:tag in the registry, or None when it is absent.

    Returns "unknown" when the registry wants a token (Bearer) instead of basic auth: the
    engine knows how to get one, this check does not, so the image is pushed.
    """
    url = manifest_url(scheme, registry, repository, tag)
    try:
        answer = session.head(url, headers={"Accept": MANIFEST_ACCEPT}, timeout=API_TIMEOUT)
    except requests.exceptions.RequestException as exc:
        raise RegistryApiError(failure_message(registry, exc, session.verify if session.verify is not True else None)) from exc
    if answer.status_code == 404:
        return None
    if answer.status_code == 401:
        if answer.headers.get("WWW-Authenticate", "").lower().startswith("bearer"):
            return "unknown"
        if session.auth:
            raise RegistryApiError("Registry %s refused the user %s (HTTP 401 on %s): wrong username or password." % (registry, session.auth[0], url))
        raise RegistryApiError("Registry %s needs credentials (HTTP 401 on %s): give username and password." % (registry, url))
    if answer.status_code != 200:
        raise RegistryApiError("Registry %s answered HTTP %d to HEAD %s" % (registry, answer.status_code, url))
    return answer.headers.get("Docker-Content-Digest")


def config_digest(session, scheme, registry, repository, reference):
    """The config digest of a single-image manifest (the image ID on the classic store), or None."""
    try:
        answer = session.get(manifest_url(scheme, registry, repository, reference), headers={"Accept": MANIFEST_ACCEPT}, timeout=API_TIMEOUT)
        if answer.status_code != 200:
            return None
        return ((answer.json() or {}).get("config") or {}).get("digest")
    except (requests.exceptions.RequestException, ValueError, AttributeError):
        return None
