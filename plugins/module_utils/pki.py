# -*- coding: utf-8 -*-
# Copyright: fleet.images contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""The registry's CA and server certificate, decided and made on the controller.

Plain functions on PEM text: `plan_pki` takes the four files' current content (what the registry
host holds) and returns the content they should have, keeping every key and certificate that is
still right and saying why it replaced the others. It runs in the registry_pki action plugin, so
the registry host needs no Python crypto package and a rerun costs no module run for the crypto.
"""

from __future__ import annotations

import datetime
import ipaddress

from ansible_collections.fleet.images.plugins.module_utils.registry_host import PKI_FILE_MODES

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError:  # the controller has it (ansible-core requires it); a managed host never imports this
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

CA_KEY, CA_CERT, SERVER_KEY, SERVER_CERT = "ca.key", "ca.crt", "server.key", "server.crt"
FILE_MODES = PKI_FILE_MODES
# A certificate starts a little in the past: a host whose clock is slightly behind the
# controller's still accepts it.
BACKDATE = datetime.timedelta(minutes=5)


class PkiError(Exception):
    pass


def pem_text(text):
    """Stored form of a PEM file: its text without surrounding blank space, one final newline."""
    return text.strip() + "\n"


def subject_alt_names(dns_names, ip_addresses):
    """The SAN list ('DNS:name', 'IP:address') in order, without repeats; a bad address is a PkiError."""
    names = []
    for name in dns_names:
        if name and name != "localhost" and "DNS:" + name not in names:
            names.append("DNS:" + name)
    for address in ip_addresses:
        if not address:
            continue
        try:
            canonical = str(ipaddress.ip_address(address))
        except ValueError:
            raise PkiError("%r is not an IP address (registry_ip_addresses takes IPv4 or IPv6 addresses, no names)" % address)
        if "IP:" + canonical not in names:
            names.append("IP:" + canonical)
    return names


def _san_extension(names):
    general = []
    for name in names:
        kind, value = name.split(":", 1)
        general.append(x509.DNSName(value) if kind == "DNS" else x509.IPAddress(ipaddress.ip_address(value)))
    return x509.SubjectAlternativeName(general)


def _certificate_names(cert):
    found = _extension(cert, x509.SubjectAlternativeName)
    if found is None:
        return set()
    return {"DNS:" + value for value in found.value.get_values_for_type(x509.DNSName)} | {
        "IP:" + str(value) for value in found.value.get_values_for_type(x509.IPAddress)
    }


def _common_name(cert):
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return values[0].value if values else None


def _not_after(cert):
    # not_valid_after_utc is cryptography >= 42; older ones give a naive UTC datetime.
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _same_public_key(cert, key):
    def raw(public_key):
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    return raw(cert.public_key()) == raw(key.public_key())


def _extension(cert, kind):
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def load_key(text):
    """The EC P-256 private key in `text`, or (None, why it cannot be kept)."""
    if not text:
        return None, "missing"
    try:
        key = serialization.load_pem_private_key(text.encode("utf-8"), password=None)
    except (ValueError, TypeError) as exc:
        return None, "unreadable as an unencrypted PEM private key (%s)" % (str(exc).splitlines() or ["?"])[0]
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        return None, "not an EC P-256 key"
    return key, None


def load_certificate(text):
    """The certificate in `text`, or (None, why it cannot be kept)."""
    if not text:
        return None, "missing"
    try:
        return x509.load_pem_x509_certificate(text.encode("utf-8")), None
    except ValueError as exc:
        return None, "unreadable as a PEM certificate (%s)" % (str(exc).splitlines() or ["?"])[0]


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode("ascii")


def certificate_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _expiry_problem(cert, now, renew_before):
    """Why a certificate's dates call for a new one: already expired, or expiring within the renewal window."""
    not_after = _not_after(cert)
    if now is not None and not_after <= now:
        return "it expired on %s (already expired, not merely within the renewal window)" % not_after.date().isoformat()
    if not_after <= renew_before:
        return "it expires on %s, within the renewal window" % not_after.date().isoformat()
    return None


def ca_problem(cert, key, common_name, renew_before, now=None):
    """Why the CA certificate must be made again, or None when it is still right."""
    if not _same_public_key(cert, key):
        return "does not belong to the CA key"
    if _common_name(cert) != common_name:
        return "its name is %r, not %r" % (_common_name(cert), common_name)
    constraints = _extension(cert, x509.BasicConstraints)
    usage = _extension(cert, x509.KeyUsage)
    if constraints is None or not constraints.value.ca or usage is None or not usage.value.key_cert_sign:
        return "it is not a CA certificate"
    return _expiry_problem(cert, now, renew_before)


def server_problem(cert, key, ca_cert, common_name, names, renew_before, now=None):
    """Why the server certificate must be issued again, or None when it is still right."""
    if not _same_public_key(cert, key):
        return "does not belong to the server key"
    if cert.issuer != ca_cert.subject:
        return "it was not issued by the CA"
    try:
        ca_cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except (ValueError, TypeError, AttributeError, InvalidSignature):
        return "it was not signed by the CA key"
    if _common_name(cert) != common_name:
        return "its name is %r, not %r" % (_common_name(cert), common_name)
    have, want = _certificate_names(cert), set(names)
    if have != want:
        parts = []
        if want - have:
            parts.append("lacks %s" % ", ".join(sorted(want - have)))
        if have - want:
            parts.append("has %s no longer wanted" % ", ".join(sorted(have - want)))
        return "its names changed: it %s" % " and ".join(parts)
    usage = _extension(cert, x509.ExtendedKeyUsage)
    if usage is None or ExtendedKeyUsageOID.SERVER_AUTH not in usage.value:
        return "it is not a TLS server certificate"
    return _expiry_problem(cert, now, renew_before)


def _builder(subject, issuer, public_key, now, valid_days):
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def new_ca_certificate(key, common_name, now, valid_days):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(name, name, key.public_key(), now, valid_days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
    )
    return builder.sign(key, hashes.SHA256())


def new_server_certificate(key, ca_cert, ca_key, common_name, names, now, valid_days):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(subject, ca_cert.subject, key.public_key(), now, valid_days)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san_extension(names), critical=False)
    )
    return builder.sign(ca_key, hashes.SHA256())


def plan_pki(current, ca_common_name, server_name, names, ca_valid_days, cert_valid_days, renew_days, now=None):
    """What the four PKI files should hold, from what they hold now.

    current: {file name: text} of the files found (ca.key, ca.crt, server.key, server.crt).
    names: the server certificate's SANs, as subject_alt_names() gives them.
    Returns {"files": {name: text}, "reasons": {name: why it is new}, "server_not_after": datetime}.
    Every kept file keeps its exact text. The server certificate is kept only while the CA's key
    verifies it, so a new CA key always brings a new server certificate.
    """
    if not HAS_CRYPTOGRAPHY:
        raise PkiError("the Python package cryptography is missing on the controller (ansible-core needs it): pip install cryptography")
    if not names:
        raise PkiError("the server certificate needs at least one name or address (registry_hostnames, registry_ip_addresses)")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    files, reasons = {}, {}

    def key_for(file_name):
        key, why = load_key(current.get(file_name, ""))
        if key is None:
            key = new_key()
            files[file_name], reasons[file_name] = key_pem(key), why
        else:
            files[file_name] = pem_text(current[file_name])
        return key

    ca_key = key_for(CA_KEY)
    ca_cert, why = load_certificate(current.get(CA_CERT, ""))
    if ca_cert is not None:
        why = ca_problem(ca_cert, ca_key, ca_common_name, now + datetime.timedelta(days=renew_days), now)
    if why is None:
        files[CA_CERT] = pem_text(current[CA_CERT])
    else:
        ca_cert = new_ca_certificate(ca_key, ca_common_name, now, ca_valid_days)
        files[CA_CERT], reasons[CA_CERT] = certificate_pem(ca_cert), why

    server_key = key_for(SERVER_KEY)
    cert, why = load_certificate(current.get(SERVER_CERT, ""))
    if cert is not None:
        why = server_problem(cert, server_key, ca_cert, server_name, names, now + datetime.timedelta(days=renew_days), now)
    if why is None:
        files[SERVER_CERT] = pem_text(current[SERVER_CERT])
    else:
        cert = new_server_certificate(server_key, ca_cert, ca_key, server_name, names, now, cert_valid_days)
        files[SERVER_CERT], reasons[SERVER_CERT] = certificate_pem(cert), why
    return {"files": files, "reasons": reasons, "server_not_after": _not_after(cert)}
