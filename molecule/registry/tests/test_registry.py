"""The registry after converge: TLS with the role's CA, an anonymous read-only pull endpoint (the clients' mirror), an
authenticated push endpoint on the registry host's loopback, images pushed, every host trusting it."""

import json
import os
import re
import subprocess

import pytest

REGISTRY = "registry-server:5000"
PUSH = "127.0.0.1:5001"
CA_DIR = "/etc/docker/certs.d/%s" % REGISTRY
CONFIG_DIR = "/etc/fleet-images/registry/registry"
PUSH_DIR = CONFIG_DIR + "/push"
CREDENTIALS = CONFIG_DIR + "/push-credentials"
PKI = CONFIG_DIR + "/pki"
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
    htpasswd = host.file("%s/htpasswd" % PUSH_DIR)
    assert htpasswd.mode == 0o600 and htpasswd.user == "root"
    entries = dict(line.split(":", 1) for line in htpasswd.content_string.splitlines())
    assert sorted(entries) == ["ci", "fleet-push", "nodes"]
    assert all(value.startswith("$2b$08$") for value in entries.values())


def test_the_generated_push_credentials_are_root_only_and_stay_secret(host):
    if not is_server(host):
        pytest.skip("registry host only")
    credentials = host.file(CREDENTIALS)
    assert credentials.mode == 0o600 and credentials.user == "root"
    name, password = credentials.content_string.strip().split(":", 1)
    assert name == "fleet-push" and len(password) == 40
    for container in ("registry", "registry-push"):
        inspected = host.check_output("docker inspect %s", container)
        assert password not in inspected and "nodes-password" not in inspected and "ci-password" not in inspected
        assert not [item for item in json.loads(inspected)[0]["Config"]["Env"] or [] if item.startswith("REGISTRY_")]
    for path in ("%s/config.yml" % CONFIG_DIR, "%s/config.yml" % PUSH_DIR):
        config = host.file(path)
        assert config.mode == 0o600 and config.user == "root"
        assert json.loads(config.content_string)["http"]["tls"]["minimumtls"] == "tls1.2"
    # The push endpoint takes them (and refuses anything else).
    cacert = "--cacert %s/ca.crt" % CA_DIR
    assert curl_status(host, "https://%s/v2/" % PUSH, cacert, "-u fleet-push:%s" % password) == "200"
    assert curl_status(host, "https://%s/v2/" % PUSH, cacert, "-u fleet-push:%s" % password[:-1]) == "401"


def test_a_site_run_prints_no_secret():
    """A converge with --diff -v: its whole output holds neither the generated nor a given password."""
    scenario = os.environ["MOLECULE_SCENARIO_DIRECTORY"]
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--diff", "-v", os.path.join(scenario, "converge.yml")],
        capture_output=True, text=True, timeout=600, check=False, env=dict(os.environ, ANSIBLE_FORCE_COLOR="0"),
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    recap = re.findall(r"changed=(\d+)", output)
    assert len(recap) == 3 and set(recap) == {"0"}, output[-3000:]
    password = subprocess.run(["docker", "exec", "registry-server", "cat", CREDENTIALS], capture_output=True, text=True,
                              check=True).stdout.strip().split(":", 1)[1]
    for secret in (password, "ci-password-1", "nodes-password-1"):
        assert secret not in output


def test_every_host_trusts_the_registry_ca_for_docker(host):
    ca = host.file("%s/ca.crt" % CA_DIR)
    assert ca.exists and ca.mode == 0o644
    assert "BEGIN CERTIFICATE" in ca.content_string
    # The CA on the host is the one that signed the registry's certificate: TLS verifies with it.
    assert curl_status(host, "https://%s/v2/" % REGISTRY, "--cacert %s/ca.crt" % CA_DIR) == "200"


def test_the_push_endpoint_wants_credentials_and_checks_them(host):
    if not is_server(host):
        pytest.skip("registry host only: the push endpoint listens on its loopback")
    cacert = "--cacert %s/ca.crt" % CA_DIR
    assert curl_status(host, "https://%s/v2/" % PUSH, cacert) == "401"
    assert curl_status(host, "https://%s/v2/" % PUSH, cacert, "-u %s:%s" % (USER, PASSWORD)) == "200"
    assert curl_status(host, "https://%s/v2/" % PUSH, cacert, "-u %s:wrong-password" % USER) == "401"
    assert curl_status(host, "https://%s/v2/" % PUSH, cacert, "-X POST", "-u %s:wrong-password" % USER) == "401"
    result = host.run("echo wrong-password | docker login --username %s --password-stdin %s", USER, PUSH)
    assert result.rc != 0 and "unauthorized" in result.stderr.lower(), result.stderr


REFUSALS = ("method not allowed", "unsupported", "unauthorized", "denied", "no basic auth", "authentication required")


@pytest.mark.parametrize("registry", [REGISTRY, PUSH])
def test_an_anonymous_push_is_refused(host, registry):
    cacert = "--cacert %s/ca.crt" % CA_DIR
    if registry == PUSH and not is_server(host):
        # From the site network there is nothing to write to: the push endpoint is on the registry host's loopback.
        assert curl_status(host, "https://registry-server:5001/v2/", "-k", "--connect-timeout 5") == "000"
        return
    status = curl_status(host, "https://%s/v2/evil/injected/blobs/uploads/" % registry, cacert, "-X POST")
    assert status == ("401" if registry == PUSH else "405"), status
    # docker push without login, replacing an image every host pulls. Docker 26 retries a refused upload for about
    # a minute (20.10 gives up at once): the refusal is in its first lines, and the catalog shows nothing landed.
    source = "%s/library/registry-probe:1" % REGISTRY
    target = "%s/library/registry-probe:1" % registry
    assert host.run("docker pull %s", source).rc == 0
    # On the registry host, image_push tagged the push endpoint's name: keep it.
    tagged_before = host.run("docker image inspect %s", target).rc == 0
    try:
        if not tagged_before:
            host.check_output("docker tag %s %s", source, target)
        host.check_output("docker tag %s %s/evil/injected:1", source, registry)
        for name in (target, "%s/evil/injected:1" % registry) if host.backend.get_hostname() != "registry-client2" else (target,):
            pushed = host.run("timeout 15 docker push %s", name)
            output = (pushed.stdout + pushed.stderr).lower()
            assert pushed.rc != 0 and any(word in output for word in REFUSALS), (name, pushed.rc, output)
    finally:
        host.run("docker image rm %s/evil/injected:1", registry)
        if not tagged_before:
            host.run("docker image rm %s", target)
    catalog = json.loads(host.check_output("curl -sf --cacert %s/ca.crt https://%s/v2/_catalog", CA_DIR, REGISTRY))
    assert "evil/injected" not in catalog["repositories"]


def test_plain_http_is_refused(host):
    status = curl_status(host, "http://%s/v2/" % REGISTRY)
    assert status not in ("200", "401"), status


def test_the_bundle_images_were_pushed_under_client_names(host):
    if not is_server(host):
        pytest.skip("asked once, from the registry host")
    catalog = json.loads(host.check_output("curl -sf --cacert %s/ca.crt https://%s/v2/_catalog", CA_DIR, REGISTRY))
    assert sorted(catalog["repositories"]) == ["fleet/registry-app", "library/registry-probe", "library/registry-zstd"]


@pytest.mark.parametrize("through_mirror", [True, False], ids=["mirror", "registry-name"])
def test_clients_pull_anonymously_over_tls(host, through_mirror):
    """Docker 20.10 (registry-client1) and 26 (registry-client2), with no credentials at all."""
    if is_server(host):
        pytest.skip("clients only")
    expected = bundle_image_ids()
    assert "registry-server:5000" in host.check_output("docker info --format '{{.RegistryConfig.Mirrors}}'")
    for path, source in PUSHED.items():
        if through_mirror and not path.startswith("library/"):
            continue
        name = path[len("library/"):] if through_mirror else "%s/%s" % (REGISTRY, path)
        host.run("docker image rm %s", name)
        pulled = host.run("docker pull %s", name)
        assert pulled.rc == 0, pulled.stderr
        image_id = host.check_output("docker image inspect --format '{{.Id}}' %s", name)
        assert image_id == expected[source], (name, image_id)
        host.run("docker image rm %s", name)


def test_docker_26_pulls_zstd_layers_through_the_mirror_by_their_docker_hub_name(host):
    """A version 2 bundle's zstd layers go into the registry as stored (bundle_push); Docker 26 pulls them by the
    Docker Hub name through its mirror and gets the bundle's image. Docker 20.10 cannot: playbooks/site.yml
    refuses such a bundle with the registry strategy when a Docker host runs it (tests/integration)."""
    if host.backend.get_hostname() != "registry-client2":
        pytest.skip("the Docker 26 client only")
    manifest = json.loads(host.check_output(
        "curl -sf --cacert %s/ca.crt -H 'Accept: application/vnd.oci.image.manifest.v1+json' "
        "-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' https://%s/v2/library/registry-zstd/manifests/1",
        CA_DIR, REGISTRY))
    with open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "bundle", "bundle.json")) as handle:
        entry = next(entry for entry in json.load(handle)["images"] if "registry-zstd:1" in entry["references"])
    if "layers" in entry:  # version 2: the blobs went in as stored (version 1: pushed by the engine, gzip)
        assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+zstd"]
    host.run("docker image rm registry-zstd:1")
    pulled = host.run("docker pull registry-zstd:1")
    assert pulled.rc == 0, pulled.stderr
    assert host.check_output("docker image inspect --format '{{.Id}}' registry-zstd:1") == entry["image_id"]
    host.run("docker image rm registry-zstd:1")
