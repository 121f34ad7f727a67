"""The ``sim`` backend: a simulated SGX platform for machines without SGX (CI, the demo).

Quotes are real DCAP v3 quotes from :mod:`floodlight_trust.sgxsim` (a simulated PCK chain, TCB info
and QE identity under a simulated root CA), so the VM verifies them through the same DCAP code. The
VM accepts them only with ``trust_simulated_sgx = true`` and then marks every decision simulated.
With ``evidence="epid"`` the platform acts as an EPID platform instead: byte-exact ``sgx_quote_t``
v2 quotes with a simulated EPID signature, which the VM submits to an IAS (the simulated one,
trusted only through ``ias.unsafe_report_signing_ca``).

Each VNF is an "enclave image": a file or a directory (code and configuration) in ``vnf_dir``. Its
MRENCLAVE is the simulated measurement of the image bytes, so one changed byte changes its
identity. Each enclave's P-256 key pair is generated when the agent starts and stays in this
process (the simulated enclave boundary); only its public key is ever sent. Installed credentials
are written to ``credentials_dir`` when one is configured, for the VNF process to use: the key only
sealed to the enclave's MRENCLAVE (``agent/sealing.py``), never in the clear.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust import clock
from floodlight_trust.agent.backends import (
    EnclaveInfo,
    Evidence,
    InstalledCredentials,
    certificate_sha256,
    parse_chain,
    spki_der,
)
from floodlight_trust.agent.sealing import platform_seal_secret, sealing_key, write_sealed
from floodlight_trust.errors import InputError, VerificationError
from floodlight_trust.protocol.keywrap import WrappedKey, unwrap_private_key

log = logging.getLogger("floodlight_trust.agent.sim")

# The host's integrity enclave: fixed code, so its MRENCLAVE is fixed for a given release.
INTEGRITY_ENCLAVE_IMAGE = b"floodlight-trust host integrity enclave v1\n"
SIM_SIGNER = hashlib.sha256(b"floodlight-trust simulated enclave signer").digest()
_COLLATERAL_REFRESH = timedelta(minutes=10)
# "dcap": DCAP v3 quotes with collateral; "epid": EPID quotes (sgx_quote_t v2) the VM sends to IAS.
SIM_EVIDENCE = ("dcap", "epid")


def _measure(image: bytes | Path) -> bytes:
    """MRENCLAVE of an image: its bytes, a file, or a directory (see sgxsim.measure_enclave_image)."""
    from floodlight_trust.sgxsim import measure_enclave_image

    return bytes(measure_enclave_image(image))


@dataclass
class SimEnclave:
    vnf: str
    image_path: Path | None
    mrenclave: bytes
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    credentials: InstalledCredentials | None = None
    provisioned_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)

    @property
    def public_key_der(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class SimBackend:
    name = "sim"
    simulated = True

    def __init__(
        self,
        platform: Any,
        enclaves: dict[str, SimEnclave],
        credentials_dir: Path | None = None,
        seal_secret: bytes | None = None,
        *,
        evidence: str = "dcap",
    ):
        if evidence not in SIM_EVIDENCE:
            raise InputError(f"unknown simulated evidence {evidence!r}", hint="agent.sim_evidence is 'dcap' or 'epid'")
        self.platform = platform
        self.evidence = evidence
        self._enclaves = enclaves
        self.credentials_dir = credentials_dir
        self._seal_secret = seal_secret
        self._lock = threading.Lock()
        self._collateral: tuple[datetime, dict[str, Any]] | None = None
        self.integrity = SimEnclave(
            "host-integrity", None, _measure(INTEGRITY_ENCLAVE_IMAGE), ec.generate_private_key(ec.SECP256R1())
        )

    @classmethod
    def open(
        cls,
        *,
        platform_dir: str | os.PathLike[str],
        vnf_dir: str | os.PathLike[str] | None = None,
        credentials_dir: str | os.PathLike[str] | None = None,
        evidence: str = "dcap",
        **_ignored: Any,
    ) -> SimBackend:
        """Load (or create on first use) the simulated platform in ``platform_dir`` and measure the
        VNF images in ``vnf_dir``."""
        from floodlight_trust.sgxsim import SimulatedPlatform

        pdir = Path(platform_dir)
        platform = (
            SimulatedPlatform.load(pdir) if (pdir.is_dir() and any(pdir.iterdir())) else SimulatedPlatform.create(pdir)
        )
        enclaves: dict[str, SimEnclave] = {}
        if vnf_dir is not None:
            for image in sorted(Path(vnf_dir).iterdir()):
                if image.name.startswith("."):
                    continue
                enclaves[image.name] = SimEnclave(
                    image.name, image, _measure(image), ec.generate_private_key(ec.SECP256R1())
                )
        log.warning("SIMULATED SGX: quotes from this agent prove nothing about real hardware")
        seal = platform_seal_secret(pdir) if credentials_dir else None
        return cls(platform, enclaves, Path(credentials_dir) if credentials_dir else None, seal, evidence=evidence)

    def add_enclave(self, vnf: str, image: bytes) -> SimEnclave:
        """Load an enclave from image bytes (tests, the demo)."""
        enclave = SimEnclave(vnf, None, _measure(image), ec.generate_private_key(ec.SECP256R1()))
        with self._lock:
            self._enclaves[vnf] = enclave
        return enclave

    def enclave(self, vnf: str) -> SimEnclave:
        try:
            return self._enclaves[vnf]
        except KeyError:
            raise InputError(
                f"no VNF enclave {vnf!r} on this host", hint="known: " + ", ".join(sorted(self._enclaves))
            ) from None

    # -- evidence --------------------------------------------------------------------------------
    def _collateral_json(self) -> dict[str, Any]:
        from floodlight_trust.evidence.dcap import collateral_to_json

        now = clock.now()
        with self._lock:
            if self._collateral is None or now - self._collateral[0] > _COLLATERAL_REFRESH:
                self._collateral = (now, collateral_to_json(self.platform.collateral(now)))
            return self._collateral[1]

    def _quote(self, enclave: SimEnclave, report_data: bytes) -> Evidence:
        if self.evidence == "epid":  # no collateral: the VM asks IAS about the quote
            epid = self.platform.epid_quote(
                mrenclave=enclave.mrenclave, mrsigner=SIM_SIGNER, report_data=report_data, isv_svn=1
            )
            return Evidence("IAS", bytes(epid), None)
        quote = self.platform.quote(
            mrenclave=enclave.mrenclave,
            mrsigner=SIM_SIGNER,
            report_data=report_data,
            isv_prod_id=0,
            isv_svn=1,
            debug=False,
        )
        return Evidence("DCAP", bytes(quote), self._collateral_json())

    def host_evidence(self, report_data: bytes) -> Evidence:
        return self._quote(self.integrity, report_data)

    def enclaves(self) -> list[EnclaveInfo]:
        return [EnclaveInfo(e.vnf, e.mrenclave.hex()) for e in self._enclaves.values()]

    def enclave_public_key(self, vnf: str) -> bytes:
        return self.enclave(vnf).public_key_der

    def enclave_evidence(self, vnf: str, report_data: bytes) -> Evidence:
        return self._quote(self.enclave(vnf), report_data)

    # -- credentials -----------------------------------------------------------------------------
    def install_credentials(self, vnf: str, chain_pem: list[str], wrapped: WrappedKey | None) -> InstalledCredentials:
        """Inside the (simulated) enclave: accept a certificate only for a key this enclave holds."""
        enclave = self.enclave(vnf)
        chain = parse_chain(chain_pem)
        leaf_spki = spki_der(chain[0])
        key: ec.EllipticCurvePrivateKey
        if wrapped is None:
            if leaf_spki != enclave.public_key_der:
                raise VerificationError(f"certificate for {vnf!r} is not for this enclave's key")
            key = enclave.key
        else:
            der = unwrap_private_key(wrapped, enclave.key, context=f"vnf:{vnf}".encode())
            loaded = serialization.load_der_private_key(der, password=None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise VerificationError("provisioned key is not an EC key")
            if (
                loaded.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                != leaf_spki
            ):
                raise VerificationError("provisioned key does not match the provisioned certificate")
            key = loaded
            enclave.provisioned_key = loaded
        creds = InstalledCredentials(vnf, certificate_sha256(chain[0]), tuple(chain_pem))
        enclave.credentials = creds
        if self.credentials_dir is not None:
            if self._seal_secret is None:
                raise InputError(
                    "credentials_dir needs the platform's sealing secret (open the backend with SimBackend.open)"
                )
            seal = sealing_key(self._seal_secret, enclave.mrenclave)
            write_sealed(self.credentials_dir, vnf, key, "".join(chain_pem), seal)
        return creds
