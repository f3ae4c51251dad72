# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build a Docker SDK client from the shared connection options and explain failures.

Every module that talks to a Docker Engine uses :func:`connect` and :func:`docker_error_message`
so that an operator sees the same, actionable wording whichever module failed.
"""

from __future__ import annotations

import os
import ssl
import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import docker
    from docker.errors import APIError, DockerException, TLSParameterError
    from docker.tls import TLSConfig

    DOCKER_SDK_IMPORT_ERROR = None
except ImportError:
    docker = None
    APIError = DockerException = TLSParameterError = Exception
    TLSConfig = None
    DOCKER_SDK_IMPORT_ERROR = traceback.format_exc()

try:
    from requests.exceptions import RequestException
except ImportError:
    RequestException = OSError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


class DockerConnectionError(Exception):
    """The engine could not be reached or the connection options are wrong; the message says what to do."""


def _walk_causes(exc):
    """Yield an exception and everything chained or wrapped inside it (requests nests them in args)."""
    seen = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending.extend([current.__cause__, current.__context__])
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
        pending.append(getattr(current, "reason", None) if isinstance(getattr(current, "reason", None), BaseException) else None)


def describe_connection_error(exc, docker_host):
    """Turn a failure to reach the engine into a sentence naming the engine and the fix."""
    text = str(exc)
    for cause in _walk_causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(cause):
            return (
                "The Docker Engine at %s presented a certificate that ca_path does not verify (%s): give as ca_path the CA that "
                "signed the engine's certificate, and as docker_host a name that certificate holds." % (
                    docker_host, getattr(cause, "verify_message", None) or "certificate verify failed")
            )
        if isinstance(cause, PermissionError) or "Permission denied" in str(cause):
            return (
                "Permission denied on the Docker Engine socket %s: run the task as root (become: true) "
                "or as a user in the 'docker' group." % docker_host
            )
        if isinstance(cause, FileNotFoundError) or "No such file or directory" in str(cause):
            return (
                "Cannot reach the Docker Engine at %s: the socket does not exist. Is dockerd running on this host? "
                "Start it (systemctl start docker) or set docker_host to the engine's address." % docker_host
            )
        if isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(cause):
            return (
                "Cannot reach the Docker Engine at %s: connection refused. Is dockerd running and listening there? "
                "Start it (systemctl start docker) or set docker_host to the engine's address." % docker_host
            )
    if "timed out" in text.lower():
        return "The Docker Engine at %s did not answer in time (%s). Raise timeout or check the engine." % (docker_host, text)
    return "Cannot talk to the Docker Engine at %s: %s" % (docker_host, text)


def docker_host_from(params):
    return params.get("docker_host") or DEFAULT_DOCKER_HOST


def tls_config_from(params):
    """Return a TLSConfig for the options, or None for a plain connection. Raises DockerConnectionError.

    A given ca_path is always used to verify the engine: validate_certs unset means verify when
    ca_path is given, and validate_certs=false next to a ca_path is refused rather than ignoring it.
    """
    verify = params.get("validate_certs")
    ca_path = params.get("ca_path")
    if verify is False and ca_path and params.get("tls"):
        raise DockerConnectionError(
            "ca_path %s is given but validate_certs=false turns verification of the engine's certificate off, so the CA would be "
            "ignored: drop validate_certs=false (ca_path then verifies the engine) or drop ca_path." % ca_path)
    if verify is None:
        verify = bool(ca_path and params.get("tls"))
    if not (params.get("tls") or verify):
        return None
    for option in ("ca_path", "client_cert", "client_key"):
        path = params.get(option)
        if path and not os.path.isfile(path):
            raise DockerConnectionError("%s %s does not exist or is not a file." % (option, path))
    if bool(params.get("client_cert")) != bool(params.get("client_key")):
        raise DockerConnectionError("client_cert and client_key must be given together.")
    if verify and not ca_path:
        raise DockerConnectionError("validate_certs=true needs ca_path: the CA certificate that signed the engine's certificate.")
    client_cert = (params["client_cert"], params["client_key"]) if params.get("client_cert") else None
    try:
        return TLSConfig(client_cert=client_cert, ca_cert=ca_path if verify else None, verify=ca_path if verify else False)
    except TLSParameterError as exc:
        raise DockerConnectionError("Invalid TLS options: %s" % exc) from exc


if docker is not None:
    class _PinnedCAClient(docker.APIClient):
        """An APIClient whose CA (ca_path) wins over REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE.

        requests lets those variables replace a session's `verify` path on every request, so on a
        host that sets them (many do) the engine would be checked against the system's CAs, and
        ca_path silently ignored.
        """

        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if isinstance(self.verify, str) and verify is None:
                settings["verify"] = self.verify
            return settings


def _docker_client(**kwargs):
    """docker.DockerClient (which only holds `api`) over _PinnedCAClient."""
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = _PinnedCAClient(**kwargs)
    return client


def build_client(params):
    """Return a connected docker.DockerClient, or raise DockerConnectionError with an actionable message."""
    if docker is None:
        raise DockerConnectionError(missing_required_lib("docker (the Docker SDK for Python, Debian package python3-docker)"))
    docker_host = docker_host_from(params)
    tls = tls_config_from(params)
    if tls is not None and docker_host.startswith("tcp://"):
        docker_host = "https://" + docker_host[len("tcp://"):]
    try:
        client = _docker_client(
            base_url=docker_host,
            version=params.get("api_version") or "auto",
            timeout=params.get("timeout") or 60,
            tls=tls if tls is not None else False,
        )
        client.ping()
    except (DockerException, RequestException, OSError) as exc:
        raise DockerConnectionError(describe_connection_error(exc, docker_host_from(params))) from exc
    return client


def connect(module):
    """Connect with the module's options; on failure, fail the module with the explanation."""
    try:
        return build_client(module.params)
    except DockerConnectionError as exc:
        module.fail_json(msg=str(exc), docker_host=docker_host_from(module.params), exception=traceback.format_exc())


def docker_error_message(exc, action):
    """Describe an error raised while doing `action` (a phrase such as "saving image nginx:1.25")."""
    if isinstance(exc, APIError):
        explanation = getattr(exc, "explanation", None) or str(exc)
        status = getattr(exc, "status_code", None)
        return "Docker Engine refused %s (HTTP %s): %s" % (action, status, explanation)
    return "Error while %s: %s" % (action, exc)
