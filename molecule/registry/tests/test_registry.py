"""The registry after converge: TLS with the role's CA, htpasswd users, images pushed, every host trusting it."""

import json
import os

import pytest

REGISTRY = "registry-server:5000"
CA_DIR = "/etc/docker/certs.d/%s" % REGISTRY
PKI = "/etc/fleet-images/registry/registry/pki"
USER, PASSWORD = "nodes", "nodes-password-1"
PUSHED = {
    "library/registry-probe:1": "registry-probe:1",
    "fleet/registry-app:1": "registry.example.com/fleet/registry-app:1",
}


def bundle_image_ids():
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "bundle", "bundle.json")
    with open(path) as handle:
        manifest = json.load(handle)
    return {ref: entry["image_id"] for entry in manifest["images"] for ref in entry["references"]}


def is_server(host):
    return host.backend.get_hostname() == "registry-server"


def curl_status(host, url, *options):
    """The HTTP status curl got, or 000 when there was no HTTP answer."""
    return host.run("curl -s -o /dev/null -w '%%{http_code}' %s '%s'" % (" ".join(options), url)).stdout.strip()


def test_the_registry_container_runs_with_its_restart_policy(host):
    if not is_server(host):
        pytest.skip("registry host only")
    state = json.loads(host.check_output("docker inspect registry"))[0]
    assert state["State"]["Running"]
    assert state["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert state["Config"]["Labels"]["fleet.images.registry.fingerprint"].startswith("sha256:")


@pytest.mark.parametrize("name, mode", [("ca.key", 0o600), ("server.key", 0o600), ("ca.crt", 0o644), ("server.crt", 0o644)])
def test_pki_files_and_modes(host, name, mode):
    if not is_server(host):
        pytest.skip("registry host only")
    pki_file = host.file("%s/%s" % (PKI, name))
    assert pki_file.exists and pki_file.user == "root" and pki_file.mode == mode
    assert host.file(PKI).mode == 0o700


def test_the_server_certificate_names_the_host_and_its_address(host):
    if not is_server(host):
        pytest.skip("registry host only")
    text = host.check_output("openssl x509 -in %s/server.crt -noout -text", PKI)
    # The address on the scenario's network (the host's own engine adds docker0 next to it).
    address = host.check_output("ip -4 -o addr show dev eth0").split()[3].split("/")[0]
    assert "DNS:registry-server" in text
    assert "IP Address:%s" % address in text
    assert "TLS Web Server Authentication" in text
    assert host.run("openssl verify -CAfile %s/ca.crt %s/server.crt", PKI, PKI).rc == 0


def test_htpasswd_holds_bcrypt_entries_only_readable_by_root(host):
    if not is_server(host):
        pytest.skip("registry host only")
    htpasswd = host.file("/etc/fleet-images/registry/registry/htpasswd")
    assert htpasswd.mode == 0o600 and htpasswd.user == "root"
    entries = dict(line.split(":", 1) for line in htpasswd.content_string.splitlines())
    assert sorted(entries) == ["ci", "nodes"]
    assert all(value.startswith("$2b$08$") for value in entries.values())


def test_every_host_trusts_the_registry_ca_for_docker(host):
    ca = host.file("%s/ca.crt" % CA_DIR)
    assert ca.exists and ca.mode == 0o644
    assert "BEGIN CERTIFICATE" in ca.content_string
    # The CA on the host is the one that signed the registry's certificate: TLS verifies with it.
    assert curl_status(host, "https://%s/v2/" % REGISTRY, "--cacert %s/ca.crt" % CA_DIR) == "401"


def test_credentials_are_required_and_checked(host):
    cacert = "--cacert %s/ca.crt" % CA_DIR
    assert curl_status(host, "https://%s/v2/" % REGISTRY, cacert, "-u %s:%s" % (USER, PASSWORD)) == "200"
    assert curl_status(host, "https://%s/v2/" % REGISTRY, cacert, "-u %s:wrong-password" % USER) == "401"


def test_plain_http_is_refused(host):
    status = curl_status(host, "http://%s/v2/" % REGISTRY)
    assert status not in ("200", "401"), status


def test_the_bundle_images_were_pushed_under_client_names(host):
    if not is_server(host):
        pytest.skip("asked once, from the registry host")
    catalog = json.loads(host.check_output(
        "curl -sf --cacert %s/ca.crt -u %s:%s https://%s/v2/_catalog", CA_DIR, USER, PASSWORD, REGISTRY))
    assert sorted(catalog["repositories"]) == ["fleet/registry-app", "library/registry-probe"]


def test_a_wrong_password_fails_docker_login_clearly(host):
    result = host.run("echo wrong-password | docker login --username %s --password-stdin %s", USER, REGISTRY)
    assert result.rc != 0
    assert "unauthorized" in result.stderr.lower(), result.stderr


def test_clients_log_in_and_pull_over_tls(host):
    if is_server(host):
        pytest.skip("clients only")
    expected = bundle_image_ids()
    login = host.run("printf %%s %s | docker login --username %s --password-stdin %s", PASSWORD, USER, REGISTRY)
    assert login.rc == 0, login.stderr
    try:
        for path, source in PUSHED.items():
            name = "%s/%s" % (REGISTRY, path)
            pulled = host.run("docker pull %s", name)
            assert pulled.rc == 0, pulled.stderr
            image_id = host.check_output("docker image inspect --format '{{.Id}}' %s", name)
            assert image_id == expected[source], (name, image_id)
            host.run("docker image rm %s", name)
    finally:
        host.run("docker logout %s", REGISTRY)
