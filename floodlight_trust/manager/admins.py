"""Who is an admin of the VM: the holder of a client certificate its admin CA issued, on record and
not revoked, with a SAN URI ``urn:ftrust:admin:NAME``. The admin CA is never given to Floodlight."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from floodlight_trust.errors import InputError
from floodlight_trust.http.server import HttpError, Request
from floodlight_trust.judges.enrollment import ADMIN_URI_PREFIX
from floodlight_trust.pki.records import CertificateAuthorityKind
from floodlight_trust.secrets import Secret


def admin_identity(request: Request, admin_ca: Any) -> str:
    """The admin name of the request's client certificate, or HttpError 401/403.

    The TLS layer checked that the certificate chains to a CA of this VM; here it must carry an
    admin SAN URI, be on record as issued by the admin CA (the very certificate: serial and
    fingerprint) and not be revoked. A certificate of the VNF CA is never an admin.
    """
    pem = request.client_certificate_pem
    if not pem:
        raise HttpError(
            401,
            "admin endpoints need a client certificate",
            kind="Unauthorized",
            hint="create one with `ftrust vm admin-cert NAME`",
        )
    cert = x509.load_pem_x509_certificate(pem.encode())
    try:
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier
        )
    except x509.ExtensionNotFound:
        uris = []
    admins = [u[len(ADMIN_URI_PREFIX) :] for u in uris if u.startswith(ADMIN_URI_PREFIX)]
    if not admins:
        raise HttpError(403, "client certificate has no admin role (SAN URI urn:ftrust:admin:NAME)", kind="Forbidden")
    records = getattr(admin_ca, "records", None)
    record = records.get(cert.serial_number) if records is not None else None
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    if record is None or not hmac.compare_digest(record.sha256, fingerprint):
        raise HttpError(
            403,
            "admin certificate has no record at this VM: only certificates its admin CA issued are admins",
            kind="Forbidden",
            hint="issue one with `ftrust vm admin-cert NAME` on the VM host",
        )
    if record.revoked:
        raise HttpError(403, "admin certificate is revoked", kind="Forbidden")
    return f"admin:{admins[0]}"


ADMIN_CERTIFICATE_DAYS = 30  # default lifetime of an admin certificate (issue 11: at most 30 days)
MAX_ADMIN_CERTIFICATE_DAYS = 365


def issue_admin_certificate(
    admin_ca: Any,
    name: str,
    out_dir: Path,
    *,
    at: Any,
    password: Secret,
    validity_days: int = ADMIN_CERTIFICATE_DAYS,
) -> tuple[Path, Path]:
    """An admin client certificate (SAN URI ``urn:ftrust:admin:NAME``) from the admin CA and its
    key, written to ``out_dir/NAME.pem`` and ``out_dir/NAME.key`` (0600, encrypted with ``password``)."""
    if not 1 <= validity_days <= MAX_ADMIN_CERTIFICATE_DAYS:
        raise InputError(
            f"admin certificate lifetime must be 1..{MAX_ADMIN_CERTIFICATE_DAYS} days, got {validity_days}"
        )
    if getattr(admin_ca.records, "kind", None) != CertificateAuthorityKind.ADMIN:
        raise InputError("admin certificates are issued only by the admin CA (statestore.open_admin_ca)")
    from cryptography.hazmat.primitives import serialization

    from floodlight_trust.fileio import atomic_write
    from floodlight_trust.pki.keys import generate_private_key
    from floodlight_trust.pki.profile import CertificateProfile, KeyType

    key = generate_private_key(KeyType.EC_P256)
    profile = CertificateProfile(
        subject=f"CN={name},OU=ftrust-admin",
        san_uris=(f"{ADMIN_URI_PREFIX}{name}",),
        validity_seconds=validity_days * 86400,
        key_type=KeyType.EC_P256,
    )
    issued = admin_ca.issue(key.public_key(), profile, at=at)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = out_dir / f"{name}.pem", out_dir / f"{name}.key"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.reveal_bytes()),
    )
    atomic_write(key_path, pem, mode=0o600)
    atomic_write(cert_path, issued.pem, mode=0o644)
    return cert_path, key_path
