"""Shell: read the operator's directory of TPM manufacturer CA certificates (PEM, PEM bundles, DER).

The one place that reads it, for ``ftrust tpm ek-check --roots`` and the Verification Manager's
``tpm.manufacturer_roots`` setting alike.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from floodlight_trust.errors import FtrustError, InputError, Location
from floodlight_trust.evidence.tpm.ek import read_certificates
from floodlight_trust.fileio import read_bytes

SUFFIXES = (".pem", ".crt", ".cer", ".der")


def read_roots_directory(path: str | Path) -> list[x509.Certificate]:
    """Every certificate in the files of ``path`` ending in .pem, .crt, .cer or .der (not recursive)."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"manufacturer roots: {folder} is not a directory", location=Location(str(folder)))
    out: list[x509.Certificate] = []
    for file in sorted(folder.iterdir()):
        if file.suffix.lower() not in SUFFIXES or not file.is_file():
            continue
        try:
            out.extend(read_certificates(read_bytes(file, what="CA certificate"), "CA certificate"))
        except FtrustError as e:
            raise e.with_file(str(file)) from None
    if not out:
        raise InputError(
            f"manufacturer roots: no certificate in {folder}",
            location=Location(str(folder)),
            hint="put the TPM vendors' CA certificates there (" + ", ".join(SUFFIXES) + ")",
        )
    return out
