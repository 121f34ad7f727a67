"""Who is an admin of the VM: the holder of a client certificate its admin CA issued, on record and
not revoked, with a SAN URI ``urn:ftrust:admin:NAME``. The admin CA is never given to Floodlight."""

from __future__ import annotations

import hmac
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from floodlight_trust.http.server import HttpError, Request
from floodlight_trust.manager.workflow import ADMIN_URI_PREFIX


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
