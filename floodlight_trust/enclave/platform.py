"""What a VNF enclave needs from the platform it runs on: its own identity, quotes, sealed storage.

Two platforms, one seam (:class:`EnclavePlatform`):

- :class:`GramineEnclave`: inside a Gramine SGX enclave. Quotes come from the enclave's OWN
  ``/dev/attestation`` (write ``user_report_data``, read ``quote``); MRENCLAVE from its
  ``my_target_info``; sealed files live on an encrypted mount of the manifest whose key is bound to
  the enclave (``_sgx_mrenclave``, or ``_sgx_mrsigner`` for upgrade-friendly sealing), so Gramine
  encrypts what the runtime writes there.
- :class:`SimEnclave`: a process of the SIMULATED platform (CI, the demo). Its MRENCLAVE is the
  measurement of its own image (``sgxsim.measure_enclave_image``); quotes are real DCAP v3 (or EPID)
  quotes from :mod:`floodlight_trust.sgxsim`; sealing is AES-256-GCM under
  ``HMAC-SHA256(platform secret, label || MRENCLAVE)``, so a changed image cannot open what the
  enrolled one sealed. The simulated platform's keys are files: the boundary it gives is the process
  model, not cryptography, and the VM accepts its quotes only under settings named simulated.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from floodlight_trust import clock
from floodlight_trust.errors import InputError, Location, VerificationError
from floodlight_trust.fileio import atomic_write, create_once, read_bytes

# The signer of every simulated enclave (the sim platform signs every image with this "key").
SIM_SIGNER = hashlib.sha256(b"floodlight-trust simulated enclave signer").digest()
SIM_EVIDENCE = ("dcap", "epid")
SEAL_SECRET_FILENAME = "sealing.secret"  # noqa: S105 (a file name, not a secret)
_SEAL_LABEL = b"ftrust-seal-v2"
_COLLATERAL_REFRESH = timedelta(minutes=10)
_GRAMINE_TYPES = {"dcap": "DCAP", "epid": "IAS"}


@dataclass(frozen=True, slots=True)
class Evidence:
    """A quote as the platform produced it."""

    evidence_type: str  # "DCAP" or "IAS"
    quote: bytes
    collateral: dict[str, Any] | None  # DCAP collateral JSON the VM verifies, or None (VM fetches it)


class SealedStateError(VerificationError):
    """Sealed data exists but does not open with this enclave's sealing key (another MRENCLAVE)."""


class EnclavePlatform(Protocol):
    """The platform under one enclave. Only that enclave's process holds it."""

    name: str
    simulated: bool

    @property
    def mrenclave(self) -> bytes: ...

    def quote(self, report_data: bytes) -> Evidence: ...

    def seal(self, name: str, data: bytes) -> None: ...

    def unseal(self, name: str) -> bytes | None:
        """The data sealed under ``name``, None when nothing was sealed; SealedStateError when it
        was sealed by another enclave."""
        ...


# -- the simulated platform ------------------------------------------------------------------------
def platform_seal_secret(platform_dir: Path, *, create: bool = True) -> bytes:
    """The simulated platform's "fused" secret (``sealing.secret``, 0600), created on first use."""
    path = platform_dir / SEAL_SECRET_FILENAME
    if not path.exists():
        if not create:
            raise InputError("the simulated platform has no sealing secret", location=Location(str(path)))
        platform_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Enclaves of one host start at once: the first to create the secret wins, the others read
        # it (replacing it would make what they sealed under the lost one unopenable).
        create_once(path, os.urandom(32), mode=0o600)
    data = read_bytes(path, what="sealing secret")
    if len(data) != 32:
        raise InputError("sealing secret must be 32 bytes", location=Location(str(path)))
    return data


class SimulatedAttestation:
    """Quotes of one simulated platform for any enclave identity: the SIMULATED quoting enclave.

    Shared by the agent's integrity enclave and by :class:`SimEnclave`; each caller quotes only its
    own MRENCLAVE."""

    def __init__(self, platform: Any, evidence: str = "dcap"):
        if evidence not in SIM_EVIDENCE:
            raise InputError(f"unknown simulated evidence {evidence!r}", hint="'dcap' or 'epid'")
        self.platform = platform
        self.evidence = evidence
        self._lock = threading.Lock()
        self._collateral: tuple[datetime, dict[str, Any]] | None = None

    def move_to(self, platform: Any) -> None:
        """Quote on another simulated machine from now on."""
        with self._lock:
            self.platform = platform
            self._collateral = None

    def _collateral_json(self) -> dict[str, Any]:
        from floodlight_trust.evidence.dcap import collateral_to_json

        now = clock.now()
        with self._lock:
            if self._collateral is None or now - self._collateral[0] > _COLLATERAL_REFRESH:
                self._collateral = (now, collateral_to_json(self.platform.collateral(now)))
            return self._collateral[1]

    def quote(self, mrenclave: bytes, report_data: bytes) -> Evidence:
        if self.evidence == "epid":  # no collateral: the VM asks IAS about the quote
            epid = self.platform.epid_quote(
                mrenclave=mrenclave, mrsigner=SIM_SIGNER, report_data=report_data, isv_svn=1
            )
            return Evidence("IAS", bytes(epid), None)
        quote = self.platform.quote(
            mrenclave=mrenclave, mrsigner=SIM_SIGNER, report_data=report_data, isv_prod_id=0, isv_svn=1, debug=False
        )
        return Evidence("DCAP", bytes(quote), self._collateral_json())


class SimEnclave:
    """A VNF enclave of the simulated platform: its identity is the measurement of its image.

    ``sealed_dir`` None keeps sealed data in memory (an enclave living inside a test process)."""

    name = "sim"
    simulated = True

    def __init__(
        self,
        attestation: SimulatedAttestation,
        image: bytes | Path,
        *,
        seal_secret: bytes,
        sealed_dir: Path | None = None,
    ):
        from floodlight_trust.sgxsim import measure_enclave_image

        self.attestation = attestation
        self._mrenclave = bytes(measure_enclave_image(image))
        self._key = hmac.new(seal_secret, _SEAL_LABEL + self._mrenclave, hashlib.sha256).digest()
        self.sealed_dir = sealed_dir
        self._memory: dict[str, bytes] = {}

    @classmethod
    def open(cls, *, platform_dir: Path, image: Path, sealed_dir: Path, evidence: str = "dcap") -> SimEnclave:
        """The enclave of ``image`` on the simulated platform in ``platform_dir`` (made by the host)."""
        from floodlight_trust.sgxsim import SimulatedPlatform

        if not image.exists():
            raise InputError("enclave image not found", location=Location(str(image)))
        if not (platform_dir.is_dir() and any(platform_dir.iterdir())):
            raise InputError(
                "no simulated SGX platform here", location=Location(str(platform_dir)), hint="start the agent first"
            )
        platform = SimulatedPlatform.load(platform_dir)
        sealed_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return cls(
            SimulatedAttestation(platform, evidence),
            image,
            seal_secret=platform_seal_secret(platform_dir),
            sealed_dir=sealed_dir,
        )

    @property
    def mrenclave(self) -> bytes:
        return self._mrenclave

    def quote(self, report_data: bytes) -> Evidence:
        return self.attestation.quote(self._mrenclave, report_data)

    def seal(self, name: str, data: bytes) -> None:
        iv = os.urandom(12)
        blob = iv + AESGCM(self._key).encrypt(iv, data, name.encode())
        if self.sealed_dir is None:
            self._memory[name] = blob
        else:
            atomic_write(self.sealed_dir / f"{name}.sealed", blob, mode=0o600)

    def unseal(self, name: str) -> bytes | None:
        if self.sealed_dir is None:
            blob = self._memory.get(name)
            where = None
        else:
            path = self.sealed_dir / f"{name}.sealed"
            blob = read_bytes(path, what=f"sealed {name}") if path.exists() else None
            where = Location(str(path))
        if blob is None:
            return None
        try:
            return AESGCM(self._key).decrypt(blob[:12], blob[12:], name.encode())
        except (InvalidTag, ValueError):
            raise SealedStateError(
                f"sealed {name} does not open with this enclave's sealing key (MRENCLAVE {self._mrenclave.hex()[:16]}...)",
                location=where,
                hint="only the enclave whose MRENCLAVE sealed it can open it; was the VNF image changed?",
            ) from None


# -- Gramine ---------------------------------------------------------------------------------------
class AttestationInterface:
    """One enclave's own Gramine attestation pseudo-files (``/dev/attestation``)."""

    def __init__(self, root: str | os.PathLike[str] = "/dev/attestation"):
        self.root = Path(root)
        self._lock = threading.Lock()  # report data and quote are a write-then-read pair

    def attestation_type(self) -> str:
        raw = read_bytes(self.root / "attestation_type", what="Gramine attestation_type").decode(errors="replace")
        raw = raw.strip()
        if raw not in _GRAMINE_TYPES:
            raise InputError(
                f"unsupported Gramine attestation type {raw[:20]!r}",
                location=Location(str(self.root / "attestation_type")),
                hint="the manifest must set sgx.remote_attestation to 'dcap' or 'epid'",
            )
        return _GRAMINE_TYPES[raw]

    def mrenclave(self) -> bytes:
        """MRENCLAVE of this enclave: the first 32 bytes of its ``my_target_info`` (sgx_target_info_t)."""
        info = read_bytes(self.root / "my_target_info", what="Gramine my_target_info")
        if len(info) < 32:
            raise InputError("my_target_info is shorter than 32 bytes", location=Location(str(self.root)))
        return info[:32]

    def quote(self, report_data: bytes) -> Evidence:
        if len(report_data) != 64:
            raise InputError(f"report data must be 64 bytes, got {len(report_data)}")
        with self._lock:
            kind = self.attestation_type()
            path = self.root / "user_report_data"
            try:
                with open(path, "wb") as fh:
                    fh.write(report_data)
            except OSError as e:
                raise InputError(
                    f"cannot write Gramine user_report_data: {e.strerror}", location=Location(str(path))
                ) from None
            quote = read_bytes(self.root / "quote", what="Gramine quote")
        return Evidence(kind, quote, None)


class GramineEnclave:
    """A VNF enclave under Gramine. ``sealed_dir`` is the manifest's encrypted mount (key bound to
    the enclave): Gramine encrypts and authenticates every byte written there."""

    name = "gramine"
    simulated = False

    def __init__(self, *, attestation_root: str | os.PathLike[str] = "/dev/attestation", sealed_dir: Path):
        self.attestation = AttestationInterface(attestation_root)
        self.sealed_dir = sealed_dir
        self._mrenclave: bytes | None = None

    @property
    def mrenclave(self) -> bytes:
        if self._mrenclave is None:
            self._mrenclave = self.attestation.mrenclave()
        return self._mrenclave

    def quote(self, report_data: bytes) -> Evidence:
        return self.attestation.quote(report_data)

    def seal(self, name: str, data: bytes) -> None:
        atomic_write(self.sealed_dir / name, data, mode=0o600)

    def unseal(self, name: str) -> bytes | None:
        path = self.sealed_dir / name
        if not path.exists():
            return None
        try:
            return path.read_bytes()
        except OSError as e:  # Gramine refuses a file encrypted under another enclave's key
            raise SealedStateError(
                f"sealed {name} does not open in this enclave: {e.strerror}",
                location=Location(str(path)),
                hint="the encrypted mount's key is bound to another MRENCLAVE/MRSIGNER",
            ) from None
