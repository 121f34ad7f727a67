"""The VNF enclave runtime: the enclave's key, its quotes, and the credentials it accepts.

One :class:`EnclaveRuntime` lives in each VNF enclave's own process. At first start it generates a
P-256 key pair and seals the private key to the enclave (:mod:`floodlight_trust.enclave.platform`);
the private key never leaves the process. It answers a challenge nonce with a quote whose
REPORTDATA it computes itself from the nonce and ITS OWN public key (``protocol/binding.py``), so a
relaying agent cannot get a quote binding another key. It installs credentials only after
:func:`~floodlight_trust.enclave.credentials.judge_offer` accepts them, and seals them too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust import clock
from floodlight_trust.enclave.credentials import CredentialsOffer, CredentialsRefused, judge_offer
from floodlight_trust.enclave.platform import EnclavePlatform, SealedStateError
from floodlight_trust.errors import InputError
from floodlight_trust.protocol import validate_outbound
from floodlight_trust.protocol.binding import NONCE_BYTES, key_report_data

log = logging.getLogger("floodlight_trust.enclave")

KEY_NAME = "enclave-key"
CREDENTIALS_NAME = "credentials"
# The nonces this enclave quoted over and may still see credentials for: the VM's nonce lifetime
# (vm.nonce_ttl_seconds, 60 s by default) plus the time it takes to judge and sign, bounded.
CHALLENGE_LIFETIME = timedelta(minutes=10)
MAX_CHALLENGES = 32


@dataclass(frozen=True, slots=True)
class InstalledCredentials:
    """The credentials an enclave accepted (the private key stays with the runtime)."""

    vnf: str
    serial: str
    key_mode: str  # "enclave" or "vm-generated"
    chain_pem: tuple[str, ...]
    installed_at: datetime
    leaf: x509.Certificate = field(repr=False)

    @property
    def certificate_sha256(self) -> str:
        return hashlib.sha256(self.leaf.public_bytes(serialization.Encoding.DER)).hexdigest()

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(der: bytes, what: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_der_private_key(der, password=None)
    except ValueError:
        raise SealedStateError(f"sealed {what} is not a PKCS#8 private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SealedStateError(f"sealed {what} is not an EC key")
    return key


class EnclaveRuntime:
    """One VNF enclave: ``vnf`` is the name it was built for (its image's configuration)."""

    def __init__(
        self,
        vnf: str,
        platform: EnclavePlatform,
        vm_ca: x509.Certificate | None,
        key: ec.EllipticCurvePrivateKey,
        *,
        now: Callable[[], datetime] = clock.now,
    ):
        self.vnf = vnf
        self.platform = platform
        self.vm_ca = vm_ca
        self._key = key
        self._now = now
        self._lock = threading.Lock()
        self._challenges: deque[tuple[bytes, datetime]] = deque(maxlen=MAX_CHALLENGES)
        self._installed: InstalledCredentials | None = None
        self._tls_key: ec.EllipticCurvePrivateKey | None = None  # the key the leaf certifies
        self._sealed_credentials: bytes | None = None
        self.generation = 0  # bumped whenever the installed credentials change

    def __repr__(self) -> str:
        return f"EnclaveRuntime({self.vnf!r}, {self.platform.name}, mrenclave={self.mrenclave.hex()[:16]}...)"

    @classmethod
    def start(
        cls,
        vnf: str,
        platform: EnclavePlatform,
        vm_ca: x509.Certificate | None,
        *,
        create_key: bool = True,
        now: Callable[[], datetime] = clock.now,
    ) -> EnclaveRuntime:
        """Open the enclave's sealed key (generating and sealing it at first start when
        ``create_key``) and its installed credentials. A key sealed by another enclave (a changed
        image) raises :class:`SealedStateError`: it is never replaced silently."""
        sealed = platform.unseal(KEY_NAME)
        if sealed is None:
            if not create_key:
                raise InputError(
                    f"enclave of {vnf} has no key yet", hint="start the enclave (ftrust enclave serve) and enroll it"
                )
            key = ec.generate_private_key(ec.SECP256R1())
            platform.seal(KEY_NAME, _pkcs8(key))
            log.info("%s: generated and sealed the enclave key", vnf)
        else:
            key = _load_key(sealed, "enclave key")
        runtime = cls(vnf, platform, vm_ca, key, now=now)
        runtime.reload()
        return runtime

    # -- identity and evidence -----------------------------------------------------------------
    @property
    def mrenclave(self) -> bytes:
        return self.platform.mrenclave

    @property
    def public_key_der(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def info(self) -> dict[str, Any]:
        installed = self.credentials
        doc = {
            "vnf": self.vnf,
            "platform": self.platform.name,
            "simulated": self.platform.simulated,
            "mrenclave": self.mrenclave.hex(),
            "public_key": base64.b64encode(self.public_key_der).decode(),
            "certificate_sha256": installed.certificate_sha256 if installed else None,
        }
        validate_outbound("enclave_info", doc)
        return doc

    def evidence(self, nonce: bytes) -> dict[str, Any]:
        """A quote over REPORTDATA = binding(nonce, this enclave's own key); the nonce is kept so
        that credentials answering it can be recognised."""
        if len(nonce) != NONCE_BYTES:
            raise InputError(f"nonce must be {NONCE_BYTES} bytes, got {len(nonce)}")
        spki = self.public_key_der
        ev = self.platform.quote(key_report_data(nonce, spki))
        with self._lock:
            self._challenges.append((nonce, self._now()))
        doc = {
            "vnf": self.vnf,
            "evidence_type": ev.evidence_type,
            "quote": base64.b64encode(ev.quote).decode(),
            "collateral": ev.collateral,
            "public_key": base64.b64encode(spki).decode(),
        }
        validate_outbound("enclave_quote", doc)
        return doc

    def _live_challenges(self, at: datetime) -> list[bytes]:
        return [n for n, t in self._challenges if at - t <= CHALLENGE_LIFETIME]

    # -- credentials ---------------------------------------------------------------------------
    def install(self, message: dict[str, Any]) -> dict[str, Any]:
        """Judge and install offered credentials; :class:`CredentialsRefused` with every reason."""
        offer = CredentialsOffer.parse(message)
        at = self._now()
        with self._lock:
            installed = self._installed
            judgement = judge_offer(
                offer,
                vnf=self.vnf,
                vm_ca=self.vm_ca,
                enclave_key=self._key,
                challenged=self._live_challenges(at),
                installed_not_before=installed.leaf.not_valid_before_utc if installed else None,
                at=at,
            )
            if not judgement.accepted:
                log.warning("%s: refused credentials %s: %s", self.vnf, offer.serial[:40], judgement.reasons)
                raise CredentialsRefused(self.vnf, list(judgement.reasons))
            if offer.provisioning is not None:  # each answer is accepted once
                spent = offer.provisioning.nonce
                self._challenges = deque(((n, t) for n, t in self._challenges if n != spent), maxlen=MAX_CHALLENGES)
            tls_key = judgement.private_key or self._key
            mode = "vm-generated" if judgement.private_key is not None else "enclave"
            doc = {
                "vnf": self.vnf,
                "serial": offer.serial,
                "key_mode": mode,
                "chain": list(offer.chain_pem),
                "key": base64.b64encode(_pkcs8(tls_key)).decode() if judgement.private_key is not None else None,
                "installed_at": clock.format_time(at),
            }
            sealed = json.dumps(doc, sort_keys=True).encode()
            self.platform.seal(CREDENTIALS_NAME, sealed)
            self._set(sealed, doc, tls_key)
            creds = self._installed
        assert creds is not None
        log.info("%s: installed certificate %s (%s key)", self.vnf, offer.serial[:40], mode)
        ack = {"vnf": self.vnf, "installed": True, "certificate_sha256": creds.certificate_sha256}
        validate_outbound("credentials_ack", ack)
        return ack

    def _set(self, sealed: bytes, doc: dict[str, Any], tls_key: ec.EllipticCurvePrivateKey) -> None:
        chain = tuple(doc["chain"])
        self._installed = InstalledCredentials(
            doc["vnf"],
            doc["serial"],
            doc["key_mode"],
            chain,
            clock.parse_time(doc["installed_at"]),
            x509.load_pem_x509_certificate(chain[0].encode()),
        )
        self._tls_key = tls_key
        self._sealed_credentials = sealed
        self.generation += 1

    def reload(self) -> bool:
        """Re-read the sealed credentials (another process of this enclave may have installed new
        ones); True when they changed."""
        sealed = self.platform.unseal(CREDENTIALS_NAME)
        with self._lock:
            if sealed is None or sealed == self._sealed_credentials:
                return False
            try:
                doc = json.loads(sealed)
                key = _load_key(base64.b64decode(doc["key"]), "credentials key") if doc["key"] else self._key
                self._set(sealed, doc, key)
            except (ValueError, KeyError, TypeError) as e:
                raise SealedStateError(
                    f"sealed credentials of {self.vnf} are unreadable ({type(e).__name__})"
                ) from None
            return True

    @property
    def credentials(self) -> InstalledCredentials | None:
        return self._installed

    @property
    def provisioned_key(self) -> ec.EllipticCurvePrivateKey | None:
        """The VM-generated key unwrapped inside this enclave (vm-generated mode), else None."""
        installed = self._installed
        return self._tls_key if installed is not None and installed.key_mode == "vm-generated" else None

    def tls_identity(self) -> tuple[InstalledCredentials, ec.EllipticCurvePrivateKey] | None:
        """The installed credentials and the private key they certify (for ControllerClient, which
        runs in this process)."""
        with self._lock:
            if self._installed is None or self._tls_key is None:
                return None
            return self._installed, self._tls_key
