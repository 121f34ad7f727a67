"""One SIMULATED SGX machine and its simulated PCS: keys and certificates stored in a directory,
collateral (TCB info, QE identity, CRLs) signed over the exact bytes, DCAP v3 quotes whose
attestation key is bound by a QE report signed by the PCK key, and EPID quotes for the simulated IAS.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.claims import TcbStatus
from floodlight_trust.errors import InputError, Location
from floodlight_trust.evidence.collateral import Collateral
from floodlight_trust.evidence.dcap import TrustAnchor
from floodlight_trust.fileio import atomic_write, read_bytes
from floodlight_trust.sgxsim.certificates import ca_name, certificate, crl, pem, raw_sign, sgx_extension
from floodlight_trust.sgxsim.epid import EPID_MAGIC, EPID_PSEUDONYM_SIZE, SIM_EPID_BASENAME
from floodlight_trust.sgxsim.report_body import encode_report_body

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
SIM_QE_MRSIGNER = hashlib.sha256(b"floodlight-trust SIMULATED quoting enclave signer").digest()
SIM_QE_MRENCLAVE = hashlib.sha256(b"floodlight-trust SIMULATED quoting enclave").digest()
SIM_QE_SVN = 8
SIM_FMSPC = bytes.fromhex("00f0d1500000")
SIM_PCE_ID = bytes.fromhex("0000")
SIM_PCE_SVN = 13
SIM_COMPONENTS = (15, 15, 2, 4, 1, 128, 14, 0, 0, 0, 0, 0, 0, 0, 0, 0)

_FILES = {
    "root": "sim-root-ca",
    "pck_ca": "sim-pck-processor-ca",
    "pck": "sim-pck",
    "tcb": "sim-tcb-signing",
}


def _enclave_report_body(
    mrenclave: bytes, mrsigner: bytes, report_data: bytes, isv_prod_id: int, isv_svn: int, debug: bool
) -> bytes:
    """The application enclave's report body on this platform, the same in DCAP and EPID quotes."""
    if len(mrenclave) != 32 or len(mrsigner) != 32:
        raise InputError("MRENCLAVE and MRSIGNER must be 32 bytes")
    if len(report_data) > 64:
        raise InputError(f"report data is {len(report_data)} bytes, at most 64")
    flags = 0x01 | 0x04 | (0x02 if debug else 0)  # INIT | MODE64BIT | DEBUG
    return encode_report_body(
        cpu_svn=bytes(SIM_COMPONENTS),
        attributes=flags.to_bytes(8, "little") + (0xE7).to_bytes(8, "little"),
        mr_enclave=mrenclave,
        mr_signer=mrsigner,
        isv_prod_id=isv_prod_id,
        isv_svn=isv_svn,
        report_data=report_data.ljust(64, b"\0"),
    )


def _z(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, eq=False)
class SimulatedPlatform:
    """One simulated SGX machine (its PCK certificate is unique to it) and its simulated PCS."""

    directory: Path
    root_key: ec.EllipticCurvePrivateKey
    root_cert: x509.Certificate
    pck_ca_key: ec.EllipticCurvePrivateKey
    pck_ca_cert: x509.Certificate
    pck_key: ec.EllipticCurvePrivateKey
    pck_cert: x509.Certificate
    tcb_key: ec.EllipticCurvePrivateKey
    tcb_cert: x509.Certificate
    attestation_key: ec.EllipticCurvePrivateKey
    tcb_status: TcbStatus = TcbStatus.UP_TO_DATE
    # Simulated EPID: members of one group share its group id and (here) its signing key; each
    # platform has its own member secret, from which its linkable pseudonyms derive.
    epid_group_id: bytes = b"\0\0\0\0"  # 4 bytes, little-endian as in the quote
    epid_group_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)
    epid_member_secret: bytes = field(default=b"", repr=False)

    # -- creation and storage ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        tcb_status: TcbStatus = TcbStatus.UP_TO_DATE,
        authority: SimulatedPlatform | None = None,
        epid_group: SimulatedPlatform | None = None,
    ) -> SimulatedPlatform:
        """Generate a new platform (all keys and certificates) and store it in ``directory``.

        ``tcb_status`` is the status the simulated TCB info gives this platform's TCB level. With
        ``authority``, the new platform shares that platform's simulated root, PCK CA and TCB signing
        key (as real machines share Intel's), so one simulated anchor covers both; its PCK
        certificate and attestation key are still its own. With ``epid_group``, the new platform
        joins that platform's simulated EPID group; otherwise it founds a group of its own.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if (directory / "platform.json").exists():
            raise InputError(
                "a simulated platform already exists here", location=Location(str(directory / "platform.json"))
            )
        new = ec.generate_private_key
        root_key, ca_key, pck_key, tcb_key, att_key = (new(ec.SECP256R1()) for _ in range(5))
        if authority is not None:
            root_key, root, ca_key, ca = (
                authority.root_key,
                authority.root_cert,
                authority.pck_ca_key,
                authority.pck_ca_cert,
            )
            tcb_key, tcb = authority.tcb_key, authority.tcb_cert
        else:
            root = certificate(ca_name("SIMULATED SGX Root CA"), root_key, root_key, None, ca=True, path=1)
            ca = certificate(ca_name("SIMULATED SGX PCK Processor CA"), ca_key, root_key, root, ca=True, path=0)
            tcb = certificate(ca_name("SIMULATED SGX TCB Signing"), tcb_key, root_key, root, ca=False)
        ext = sgx_extension(secrets.token_bytes(16), SIM_COMPONENTS, SIM_PCE_SVN, SIM_PCE_ID, SIM_FMSPC)
        pck = certificate(ca_name("SIMULATED SGX PCK Certificate"), pck_key, ca_key, ca, ca=False, sgx=ext)
        gid, gkey = (
            (epid_group.epid_group_id, epid_group.epid_group_key)
            if epid_group is not None and epid_group.epid_group_key is not None
            else (secrets.token_bytes(4), ec.generate_private_key(ec.SECP256R1()))
        )
        platform = cls(
            directory,
            root_key,
            root,
            ca_key,
            ca,
            pck_key,
            pck,
            tcb_key,
            tcb,
            att_key,
            tcb_status,
            gid,
            gkey,
            secrets.token_bytes(32),
        )
        platform._store()
        return platform

    def _store(self) -> None:
        d = self.directory
        pairs = {
            "root": (self.root_key, self.root_cert),
            "pck_ca": (self.pck_ca_key, self.pck_ca_cert),
            "pck": (self.pck_key, self.pck_cert),
            "tcb": (self.tcb_key, self.tcb_cert),
        }
        for role, (key, cert) in pairs.items():
            atomic_write(d / f"{_FILES[role]}.key", _key_pem(key), mode=0o600)
            atomic_write(d / f"{_FILES[role]}.pem", pem(cert), mode=0o644)
        atomic_write(d / "sim-attestation.key", _key_pem(self.attestation_key), mode=0o600)
        self._store_epid()
        meta = {"format": "floodlight-trust simulated SGX platform v1", "tcb_status": self.tcb_status.value}
        atomic_write(d / "platform.json", json.dumps(meta, indent=2) + "\n", mode=0o644)

    def _store_epid(self) -> None:
        assert self.epid_group_key is not None
        d = self.directory
        atomic_write(d / "sim-epid-group.key", _key_pem(self.epid_group_key), mode=0o600)
        atomic_write(d / "sim-epid-member.secret", self.epid_member_secret.hex() + "\n", mode=0o600)
        atomic_write(d / "sim-epid.json", json.dumps({"group_id": self.epid_group_id.hex()}) + "\n", mode=0o644)

    @classmethod
    def load(cls, directory: Path) -> SimulatedPlatform:
        """Load a platform stored by :meth:`create`."""
        d = Path(directory)
        meta_raw = read_bytes(d / "platform.json", what="simulated platform description")
        try:
            meta = json.loads(meta_raw)
            status = TcbStatus.parse(meta.get("tcb_status", "UpToDate"))
        except (ValueError, AttributeError):
            raise InputError(
                "not a simulated platform description", location=Location(str(d / "platform.json"))
            ) from None

        def pair(role: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
            return _load_key(d / f"{_FILES[role]}.key"), _load_cert(d / f"{_FILES[role]}.pem")

        root_key, root = pair("root")
        ca_key, ca = pair("pck_ca")
        pck_key, pck = pair("pck")
        tcb_key, tcb = pair("tcb")
        att = _load_key(d / "sim-attestation.key")
        if not (d / "sim-epid.json").exists():  # a platform stored before EPID support: found a group
            platform = cls(
                d, root_key, root, ca_key, ca, pck_key, pck, tcb_key, tcb, att, status,
                secrets.token_bytes(4), ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(32),
            )  # fmt: skip
            platform._store_epid()
            return platform
        try:
            gid = bytes.fromhex(json.loads(read_bytes(d / "sim-epid.json", what="simulated EPID group"))["group_id"])
            member = bytes.fromhex(read_bytes(d / "sim-epid-member.secret", what="simulated EPID secret").decode())
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise InputError(
                "not a simulated EPID group description", location=Location(str(d / "sim-epid.json"))
            ) from None
        if len(gid) != 4:
            raise InputError("an EPID group id has 4 bytes", location=Location(str(d / "sim-epid.json")))
        gkey = _load_key(d / "sim-epid-group.key")
        return cls(d, root_key, root, ca_key, ca, pck_key, pck, tcb_key, tcb, att, status, gid, gkey, member)

    # -- what verifiers need ---------------------------------------------------------------------

    def anchor(self) -> TrustAnchor:
        """The SIMULATED root as a trust anchor (logs a warning: never use it for real hardware)."""
        return TrustAnchor.unsafe_simulated(self.root_cert)

    def collateral(
        self, at: datetime, *, validity: timedelta = timedelta(days=30), revoke_pck: bool = False
    ) -> Collateral:
        """TCB info, QE identity and CRLs valid from one day before ``at`` for ``validity``."""
        issue = at.astimezone(UTC).replace(microsecond=0) - timedelta(days=1)
        next_update = issue + timedelta(days=1) + validity
        status = self.tcb_status
        advisories = [] if status is TcbStatus.UP_TO_DATE else ["INTEL-SA-00000"]
        lower = [c - 1 if c else 0 for c in SIM_COMPONENTS]
        tcb_info = {
            "id": "SGX",
            "version": 3,
            "issueDate": _z(issue),
            "nextUpdate": _z(next_update),
            "fmspc": SIM_FMSPC.hex().upper(),
            "pceId": SIM_PCE_ID.hex().upper(),
            "tcbType": 0,
            "tcbEvaluationDataNumber": 1,
            "tcbLevels": [
                _tcb_level(list(SIM_COMPONENTS), SIM_PCE_SVN, status.value, advisories),
                _tcb_level(lower, SIM_PCE_SVN - 1, "OutOfDate", ["INTEL-SA-00000"]),
            ],
        }
        qe_identity = {
            "id": "QE",
            "version": 2,
            "issueDate": _z(issue),
            "nextUpdate": _z(next_update),
            "tcbEvaluationDataNumber": 1,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": "11000000000000000000000000000000",
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": SIM_QE_MRSIGNER.hex().upper(),
            "isvprodid": 1,
            "tcbLevels": [
                {"tcb": {"isvsvn": SIM_QE_SVN}, "tcbDate": "2024-01-01T00:00:00Z", "tcbStatus": "UpToDate"},
                {"tcb": {"isvsvn": 1}, "tcbDate": "2020-01-01T00:00:00Z", "tcbStatus": "OutOfDate"},
            ],
        }
        tcb_raw = json.dumps(tcb_info, separators=(",", ":")).encode()
        qe_raw = json.dumps(qe_identity, separators=(",", ":")).encode()
        chain = pem(self.tcb_cert) + pem(self.root_cert)
        revoked = [self.pck_cert.serial_number] if revoke_pck else []
        return Collateral(
            tcb_info=tcb_raw,
            tcb_info_signature=raw_sign(self.tcb_key, tcb_raw),
            tcb_info_issuer_chain=chain,
            qe_identity=qe_raw,
            qe_identity_signature=raw_sign(self.tcb_key, qe_raw),
            qe_identity_issuer_chain=chain,
            root_ca_crl=crl(self.root_key, self.root_cert, issue, next_update, []),
            pck_crl=crl(self.pck_ca_key, self.pck_ca_cert, issue, next_update, revoked),
            pck_crl_issuer_chain=pem(self.pck_ca_cert) + pem(self.root_cert),
        )

    @property
    def pck_certificate_sha256(self) -> str:
        return hashlib.sha256(self.pck_cert.public_bytes(serialization.Encoding.DER)).hexdigest()

    # -- quotes ----------------------------------------------------------------------------------

    def quote(
        self,
        *,
        mrenclave: bytes,
        mrsigner: bytes,
        report_data: bytes,
        isv_prod_id: int = 0,
        isv_svn: int = 0,
        debug: bool = False,
    ) -> bytes:
        """A DCAP v3 quote for an enclave with these identity fields (report_data: up to 64 bytes,
        zero-padded), signed by this platform's attestation key, certified by its PCK chain."""
        body = _enclave_report_body(mrenclave, mrsigner, report_data, isv_prod_id, isv_svn, debug)
        header = (
            struct.pack("<HHIHH", 3, 2, 0, SIM_QE_SVN, SIM_PCE_SVN)
            + INTEL_QE_VENDOR_ID
            + hashlib.sha256(self.pck_cert.public_bytes(serialization.Encoding.DER)).digest()[:16]
            + bytes(4)
        )
        signed = header + body
        att_pub, auth, qe_report, qe_report_signature = self._qe_certification
        cert_data = pem(self.pck_cert) + pem(self.pck_ca_cert) + pem(self.root_cert)
        sig_data = (
            raw_sign(self.attestation_key, signed)
            + att_pub
            + qe_report
            + qe_report_signature
            + struct.pack("<H", len(auth))
            + auth
            + struct.pack("<HI", 5, len(cert_data))
            + cert_data
        )
        return signed + struct.pack("<I", len(sig_data)) + sig_data

    @cached_property
    def _qe_certification(self) -> tuple[bytes, bytes, bytes, bytes]:
        """The attestation key's point, the QE authentication data, the QE report binding both and
        its signature by the PCK key. The PCE signs a QE report once, when it certifies the QE's
        attestation key, and every quote then carries those same bytes, as here (one signature per
        platform object, not per quote)."""
        att_pub = self.attestation_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )[1:]
        auth = bytes(range(32))
        qe_report = encode_report_body(
            cpu_svn=bytes(SIM_COMPONENTS),
            attributes=(0x11).to_bytes(8, "little") + (0xE7).to_bytes(8, "little"),
            mr_enclave=SIM_QE_MRENCLAVE,
            mr_signer=SIM_QE_MRSIGNER,
            isv_prod_id=1,
            isv_svn=SIM_QE_SVN,
            report_data=hashlib.sha256(att_pub + auth).digest() + bytes(32),
        )
        return att_pub, auth, qe_report, raw_sign(self.pck_key, qe_report)

    def epid_quote(
        self,
        *,
        mrenclave: bytes,
        mrsigner: bytes,
        report_data: bytes,
        isv_prod_id: int = 0,
        isv_svn: int = 0,
        debug: bool = False,
        linkable: bool = True,
        basename: bytes = SIM_EPID_BASENAME,
    ) -> bytes:
        """An EPID quote (``sgx_quote_t`` version 2, as sent to IAS) with a SIMULATED signature.

        Header and report body are byte-exact. The signature blob is not EPID: it is the 128-byte
        pseudonym (HMAC of this platform's member secret over the basename when linkable, random
        when not), then an ECDSA P-256 signature (r || s) by the group's key over header, body and
        pseudonym, then a marker. :class:`floodlight_trust.sgxsim.ias_service.SimulatedIas` checks it
        with :func:`verify_simulated_epid_signature`.
        """
        body = _enclave_report_body(mrenclave, mrsigner, report_data, isv_prod_id, isv_svn, debug)
        if len(basename) != 32:
            raise InputError("an EPID basename has 32 bytes")
        assert self.epid_group_key is not None
        header = (
            struct.pack("<HH", 2, 1 if linkable else 0)
            + self.epid_group_id
            + struct.pack("<HHI", SIM_QE_SVN, SIM_PCE_SVN, 0)
            + basename
        )
        if linkable:
            pseudonym = b"".join(
                hmac.new(self.epid_member_secret, tag + basename, hashlib.sha512).digest() for tag in (b"B", b"K")
            )
        else:
            pseudonym = secrets.token_bytes(EPID_PSEUDONYM_SIZE)
        blob = pseudonym + raw_sign(self.epid_group_key, header + body + pseudonym) + EPID_MAGIC
        return header + body + struct.pack("<I", len(blob)) + blob


def _tcb_level(components: list[int], pce_svn: int, status: str, advisories: list[str]) -> dict[str, Any]:
    level: dict[str, Any] = {
        "tcb": {"sgxtcbcomponents": [{"svn": c} for c in components], "pcesvn": pce_svn},
        "tcbDate": "2024-01-01T00:00:00Z",
        "tcbStatus": status,
    }
    if advisories:
        level["advisoryIDs"] = advisories
    return level


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(read_bytes(path, what="simulated platform key"), None)
    except (ValueError, TypeError):
        raise InputError("not a PEM private key", location=Location(str(path))) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError("not an EC private key", location=Location(str(path)))
    return key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(read_bytes(path, what="simulated platform certificate"))
    except ValueError:
        raise InputError("not a PEM certificate", location=Location(str(path))) from None
