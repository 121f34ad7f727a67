"""Sealing for simulated enclaves: SGX's MRENCLAVE sealing policy, simulated.

A real enclave derives a sealing key from the CPU's fused secret and its own MRENCLAVE (EGETKEY), so
only the same enclave code on the same machine can open what it sealed. The ``sim`` platform keeps
its "fused" secret in ``sealing.secret`` (0600) in the platform directory; a VNF's private key is
written to disk only encrypted under ``HMAC-SHA256(secret, "ftrust-seal-v1" || MRENCLAVE)``, so a
changed VNF image (another MRENCLAVE) cannot open the key of the enrolled one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from floodlight_trust.errors import InputError, Location
from floodlight_trust.fileio import atomic_write
from floodlight_trust.secrets import Secret

SEAL_SECRET_FILENAME = "sealing.secret"  # noqa: S105 (a file name, not a secret)
_LABEL = b"ftrust-seal-v1"


def platform_seal_secret(platform_dir: Path, *, create: bool = True) -> bytes:
    """The simulated platform's fused secret, created on first use when ``create``."""
    path = platform_dir / SEAL_SECRET_FILENAME
    if not path.exists():
        if not create:
            raise InputError("the simulated platform has no sealing secret", location=Location(str(path)))
        platform_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, os.urandom(32), mode=0o600)
    data = path.read_bytes()
    if len(data) != 32:
        raise InputError("sealing secret must be 32 bytes", location=Location(str(path)))
    return data


def sealing_key(secret: bytes, mrenclave: bytes) -> Secret:
    """The key an enclave with ``mrenclave`` derives on this platform (hex text, used as a PEM password)."""
    return Secret(hmac.new(secret, _LABEL + mrenclave, hashlib.sha256).hexdigest(), "sealing key")


@dataclass(frozen=True, slots=True)
class SealedCredentials:
    """Where a VNF's certificate chain and sealed key are, and the key that opens it."""

    chain: Path
    key: Path
    password: Secret


def credential_paths(credentials_dir: Path, vnf: str) -> tuple[Path, Path]:
    return credentials_dir / f"{vnf}.chain.pem", credentials_dir / f"{vnf}.key.sealed.pem"


def write_sealed(credentials_dir: Path, vnf: str, key: PrivateKeyTypes, chain_pem: str, seal: Secret) -> None:
    credentials_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    chain_path, key_path = credential_paths(credentials_dir, vnf)
    sealed = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(seal.reveal_bytes()),
    )
    atomic_write(key_path, sealed, mode=0o600)
    atomic_write(chain_path, chain_pem, mode=0o644)


def open_sealed(credentials_dir: Path, vnf: str, seal: Secret) -> SealedCredentials:
    """The credentials of ``vnf``, checked to open with ``seal`` (a wrong enclave gets an error)."""
    chain_path, key_path = credential_paths(credentials_dir, vnf)
    for path, what in ((chain_path, "certificate chain"), (key_path, "sealed key")):
        if not path.exists():
            raise InputError(
                f"{vnf} has no {what} (not enrolled yet?)",
                location=Location(str(path)),
                hint="enroll it first: ftrust vm enroll HOST VNF",
            )
    try:
        serialization.load_pem_private_key(key_path.read_bytes(), password=seal.reveal_bytes())
    except ValueError:
        raise InputError(
            f"sealed key of {vnf} does not open with this enclave's sealing key",
            location=Location(str(key_path)),
            hint="only the enclave whose MRENCLAVE sealed the key can open it; was the VNF image changed?",
        ) from None
    return SealedCredentials(chain_path, key_path, seal)
