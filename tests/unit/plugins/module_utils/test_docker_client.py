"""The connection layer's wording of failures, and its option checks, without an engine."""

from __future__ import annotations

import pytest
import requests

from ansible_collections.fleet.images.plugins.module_utils import docker_args, docker_client
from ansible_collections.fleet.images.plugins.module_utils.docker_args import docker_connection_args
from ansible_collections.fleet.images.plugins.module_utils.docker_client import (
    DockerConnectionError,
    describe_connection_error,
    docker_error_message,
    tls_config_from,
)


def wrapped(inner):
    """Nest an OS error the way requests and the Docker SDK hand it over."""
    try:
        try:
            raise inner
        except OSError as exc:
            raise requests.exceptions.ConnectionError(("Connection aborted.", exc)) from exc
    except requests.exceptions.ConnectionError as exc:
        return docker_client.DockerException("Error while fetching server API version: %s" % exc)


@pytest.mark.parametrize(
    "error, expected",
    [
        (wrapped(FileNotFoundError(2, "No such file or directory")), "the socket does not exist. Is dockerd running"),
        (wrapped(PermissionError(13, "Permission denied")), "Permission denied on the Docker Engine socket unix:///s.sock"),
        (wrapped(ConnectionRefusedError(111, "Connection refused")), "connection refused. Is dockerd running"),
        (requests.exceptions.ReadTimeout("Read timed out. (read timeout=3)"), "did not answer in time"),
        (docker_client.DockerException("something odd"), "Cannot talk to the Docker Engine at unix:///s.sock: something odd"),
    ],
    ids=["missing-socket", "permission", "refused", "timeout", "other"],
)
def test_connection_errors_name_the_engine_and_the_fix(error, expected):
    message = describe_connection_error(error, "unix:///s.sock")
    assert expected in message
    assert "unix:///s.sock" in message


def test_shared_arguments_merge_with_module_arguments():
    spec = docker_connection_args(images=dict(type="list", elements="str"))
    assert {"docker_host", "tls", "validate_certs", "ca_path", "api_version", "timeout", "images"} <= set(spec)
    assert "images" not in docker_args.DOCKER_CONNECTION_ARGS


def test_plain_connection_needs_no_tls():
    assert tls_config_from({"tls": False, "validate_certs": False}) is None


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"tls": True, "ca_path": "/nonexistent/ca.pem"}, "ca_path /nonexistent/ca.pem does not exist"),
        ({"validate_certs": True}, "validate_certs=true needs ca_path"),
    ],
)
def test_tls_options_are_checked_before_connecting(params, expected):
    with pytest.raises(DockerConnectionError, match=expected):
        tls_config_from(params)


def test_client_cert_needs_its_key(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(DockerConnectionError, match="client_cert and client_key must be given together"):
        tls_config_from({"tls": True, "client_cert": str(cert)})


def test_api_errors_keep_the_engine_explanation():
    response = requests.Response()
    response.status_code = 404
    error = docker_client.APIError("404 Client Error", response=response, explanation="No such image: nginx:1.25")
    message = docker_error_message(error, "saving image nginx:1.25")
    assert message == "Docker Engine refused saving image nginx:1.25 (HTTP 404): No such image: nginx:1.25"


@pytest.mark.parametrize("params, verified", [
    ({"tls": True}, False),
    ({"tls": True, "ca_path": "CA"}, True),
    ({"tls": True, "ca_path": "CA", "validate_certs": None}, True),
    ({"tls": True, "ca_path": "CA", "validate_certs": True}, True),
    ({"validate_certs": True, "ca_path": "CA"}, True),
])
def test_a_given_ca_path_is_always_used_to_verify(tmp_path, params, verified):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    params = dict((key, str(ca) if value == "CA" else value) for key, value in params.items())
    config = tls_config_from(params)
    assert config.verify == (str(ca) if verified else False)


def test_ca_path_with_validate_certs_false_is_refused(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(DockerConnectionError, match="the CA would be ignored"):
        tls_config_from({"tls": True, "ca_path": str(ca), "validate_certs": False})
