"""The VM's own TLS server identity (not a VNF certificate, not from the VNF CA).

A self-signed P-256 certificate for the names the VM listens on, kept in ``state/vm-tls/``; its key is
encrypted at rest with the CA key's password (the VM holds it anyway) and is 0600. Admin tools and
agents pin the certificate (``vm.tls_certificate`` on their side). The VNF CA only signs client
certificates (clientAuth), so it is deliberately not used for the server.
"""

from __future__ import annotations

import ipaddress
import ssl
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from floodlight_trust.fileio import atomic_write
from floodlight_trust.http.server import server_tls_context
from floodlight_trust.pki.profile import end_entity_key_usage
from floodlight_trust.secrets import Secret

CERT_FILE = "server.pem"
KEY_FILE = "server.key"


def _encrypted_pem(key: PrivateKeyTypes, password: Secret) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.reveal_bytes()),
    )


def ensure_server_certificate(
    directory: Path, names: list[str], *, at: datetime, password: Secret
) -> tuple[Path, Path]:
    """The VM's TLS certificate and (encrypted) key files, created or renewed (< 7 days left) as needed.

    A key left unencrypted by an older version is re-encrypted in place."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            pem = key_path.read_bytes()
            if b"ENCRYPTED" not in pem:
                old = serialization.load_pem_private_key(pem, password=None)
                atomic_write(key_path, _encrypted_pem(old, password), mode=0o600)
            if cert.not_valid_after_utc - at > timedelta(days=7) and not _is_ca(cert):
                return cert_path, key_path  # (an older CA:TRUE certificate is replaced)
        except ValueError:
            pass  # damaged, or encrypted under another password: make a new one
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in dict.fromkeys(["localhost", "127.0.0.1", *names]):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "floodlight-trust Verification Manager")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - timedelta(minutes=5))
        .not_valid_after(at + timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        # Pinned as its own trust anchor (OpenSSL accepts a self-signed end-entity certificate in the
        # trust store), but never a CA: its key must not be able to vouch for any other certificate.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(end_entity_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    atomic_write(key_path, _encrypted_pem(key, password), mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert_path, key_path


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def server_context(cert_path: Path, key_path: Path, client_ca_pem: bytes, password: Secret) -> ssl.SSLContext:
    """TLS 1.2+ (1.2 with ECDHE and AEAD only); a client certificate is optional at the TLS layer but,
    when sent, must chain to the VNF CA (admins' certificates); the API decides per endpoint whether
    one is required."""
    ctx = server_tls_context()
    ctx.load_cert_chain(str(cert_path), str(key_path), password=password.reveal_bytes())
    ctx.load_verify_locations(cadata=client_ca_pem.decode("ascii"))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
