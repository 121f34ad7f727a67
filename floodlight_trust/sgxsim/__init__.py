"""A simulated SGX platform: byte-exact DCAP v3 quotes under a SIMULATED root CA.

For machines without SGX (CI, the demo, the agent's ``sim`` backend). Everything a real platform and
Intel's PCS provide is generated here with the same structure: a root CA, a PCK Processor CA, a PCK
certificate carrying the real SGX extensions (OID 1.2.840.113741.1.13.1), a TCB signing certificate
that signs TCB info and QE identity JSON over the exact bytes, CRLs, and a quoting enclave whose
attestation key is bound by a QE report signed by the PCK key. Quotes therefore verify through the
same :func:`floodlight_trust.evidence.dcap.verify_quote` path as real ones, but only under
:meth:`TrustAnchor.unsafe_simulated`: they prove nothing about real hardware.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from floodlight_trust.claims import TcbStatus
from floodlight_trust.errors import InputError, Location
from floodlight_trust.evidence.collateral import Collateral
from floodlight_trust.evidence.dcap import TrustAnchor
from floodlight_trust.evidence.sgx_quote import (
    REPORT_BODY_SIZE,
    SGX_EXTENSIONS_OID,
    SIGNED_SIZE,
    EpidQuote,
    oid_der,
)
from floodlight_trust.fileio import atomic_write, read_bytes

__all__ = [
    "SIM_EPID_BASENAME",
    "SimulatedPlatform",
    "encode_report_body",
    "measure_enclave_image",
    "verify_simulated_epid_signature",
]

INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
SIM_QE_MRSIGNER = hashlib.sha256(b"floodlight-trust SIMULATED quoting enclave signer").digest()
SIM_QE_MRENCLAVE = hashlib.sha256(b"floodlight-trust SIMULATED quoting enclave").digest()
SIM_QE_SVN = 8
SIM_FMSPC = bytes.fromhex("00f0d1500000")
SIM_PCE_ID = bytes.fromhex("0000")
SIM_PCE_SVN = 13
SIM_COMPONENTS = (15, 15, 2, 4, 1, 128, 14, 0, 0, 0, 0, 0, 0, 0, 0, 0)
# Where the simulated CAs say their CRLs are published (never fetched: the collateral carries them).
SIM_CRL_URL = "https://sgx-simulated.invalid/crl"
# The service provider's basename (from its SPID) for linkable EPID quotes: quotes of one platform
# with one basename carry the same pseudonym.
SIM_EPID_BASENAME = hashlib.sha256(b"floodlight-trust SIMULATED SPID basename").digest()
_EPID_PSEUDONYM_SIZE = 128  # B || K, as at the start of a real EPID signature
_EPID_MAGIC = b"floodlight-trust SIMULATED EPID signature v1"
_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
_NOT_AFTER = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)

_FILES = {
    "root": "sim-root-ca",
    "pck_ca": "sim-pck-processor-ca",
    "pck": "sim-pck",
    "tcb": "sim-tcb-signing",
}


def measure_enclave_image(image: bytes | Path) -> bytes:
    """MRENCLAVE of a simulated enclave: SHA-256 of the VNF's enclave image (code + configuration).

    ``image`` is the image bytes, a file, or a directory (then every regular file, in sorted relative
    path order, contributes its path and content, length-prefixed), so any byte change changes it.
    """
    if isinstance(image, bytes | bytearray):
        return hashlib.sha256(image).digest()
    path = Path(image)
    if path.is_dir():
        h = hashlib.sha256(b"floodlight-trust enclave image v1\0")
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = f.relative_to(path).as_posix().encode("utf-8")
            data = read_bytes(f, what="enclave image file")
            h.update(struct.pack("<Q", len(rel)) + rel + struct.pack("<Q", len(data)))
            h.update(data)
        return h.digest()
    return hashlib.sha256(read_bytes(path, what="enclave image")).digest()


def encode_report_body(
    *,
    cpu_svn: bytes = bytes(16),
    misc_select: int = 0,
    isv_ext_prod_id: bytes = bytes(16),
    attributes: bytes = bytes(16),
    mr_enclave: bytes = bytes(32),
    mr_signer: bytes = bytes(32),
    config_id: bytes = bytes(64),
    isv_prod_id: int = 0,
    isv_svn: int = 0,
    config_svn: int = 0,
    isv_family_id: bytes = bytes(16),
    report_data: bytes = bytes(64),
) -> bytes:
    """``sgx_report_body_t`` bytes (384), the inverse of :func:`sgx_quote.parse_report_body`."""
    body = (
        cpu_svn
        + struct.pack("<I", misc_select)
        + bytes(12)
        + isv_ext_prod_id
        + attributes
        + mr_enclave
        + bytes(32)
        + mr_signer
        + bytes(32)
        + config_id
        + struct.pack("<HHH", isv_prod_id, isv_svn, config_svn)
        + bytes(42)
        + isv_family_id
        + report_data
    )
    assert len(body) == REPORT_BODY_SIZE
    return body


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


# ---------------------------------------------------------------------------------------------
# DER for the SGX extension (only what it needs).


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _oid(text: str) -> bytes:
    return _tlv(0x06, oid_der(text))


def _int(tag: int, value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")  # leading 0 keeps it positive
    return _tlv(tag, raw)


def sgx_extension(ppid: bytes, components: tuple[int, ...], pce_svn: int, pce_id: bytes, fmspc: bytes) -> bytes:
    """The DER value of extension 1.2.840.113741.1.13.1 as Intel's PCK certificates carry it."""
    base = SGX_EXTENSIONS_OID

    def pair(oid: str, value: bytes) -> bytes:
        return _tlv(0x30, _oid(oid) + value)

    tcb = b"".join(pair(f"{base}.2.{i + 1}", _int(0x02, c)) for i, c in enumerate(components))
    tcb += pair(f"{base}.2.17", _int(0x02, pce_svn)) + pair(f"{base}.2.18", _tlv(0x04, bytes(components)))
    return _tlv(
        0x30,
        pair(f"{base}.1", _tlv(0x04, ppid))
        + pair(f"{base}.2", _tlv(0x30, tcb))
        + pair(f"{base}.3", _tlv(0x04, pce_id))
        + pair(f"{base}.4", _tlv(0x04, fmspc))
        + pair(f"{base}.5", _int(0x0A, 0)),
    )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "floodlight-trust SIMULATED SGX"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        ]
    )


def _raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


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
            root = _cert(_name("SIMULATED SGX Root CA"), root_key, root_key, None, ca=True, path=1)
            ca = _cert(_name("SIMULATED SGX PCK Processor CA"), ca_key, root_key, root, ca=True, path=0)
            tcb = _cert(_name("SIMULATED SGX TCB Signing"), tcb_key, root_key, root, ca=False)
        ext = sgx_extension(secrets.token_bytes(16), SIM_COMPONENTS, SIM_PCE_SVN, SIM_PCE_ID, SIM_FMSPC)
        pck = _cert(_name("SIMULATED SGX PCK Certificate"), pck_key, ca_key, ca, ca=False, sgx=ext)
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
            atomic_write(d / f"{_FILES[role]}.pem", _pem(cert), mode=0o644)
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
        chain = _pem(self.tcb_cert) + _pem(self.root_cert)
        revoked = [self.pck_cert.serial_number] if revoke_pck else []
        return Collateral(
            tcb_info=tcb_raw,
            tcb_info_signature=_raw_sign(self.tcb_key, tcb_raw),
            tcb_info_issuer_chain=chain,
            qe_identity=qe_raw,
            qe_identity_signature=_raw_sign(self.tcb_key, qe_raw),
            qe_identity_issuer_chain=chain,
            root_ca_crl=_crl(self.root_key, self.root_cert, issue, next_update, []),
            pck_crl=_crl(self.pck_ca_key, self.pck_ca_cert, issue, next_update, revoked),
            pck_crl_issuer_chain=_pem(self.pck_ca_cert) + _pem(self.root_cert),
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
        cert_data = _pem(self.pck_cert) + _pem(self.pck_ca_cert) + _pem(self.root_cert)
        sig_data = (
            _raw_sign(self.attestation_key, signed)
            + att_pub
            + qe_report
            + _raw_sign(self.pck_key, qe_report)
            + struct.pack("<H", len(auth))
            + auth
            + struct.pack("<HI", 5, len(cert_data))
            + cert_data
        )
        return signed + struct.pack("<I", len(sig_data)) + sig_data

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
            pseudonym = secrets.token_bytes(_EPID_PSEUDONYM_SIZE)
        blob = pseudonym + _raw_sign(self.epid_group_key, header + body + pseudonym) + _EPID_MAGIC
        return header + body + struct.pack("<I", len(blob)) + blob


def verify_simulated_epid_signature(quote: EpidQuote, group_public_key: ec.EllipticCurvePublicKey) -> bool:
    """True when ``quote`` carries a simulated EPID signature by ``group_public_key``'s group."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    sig = quote.signature
    if sig is None or len(sig) != _EPID_PSEUDONYM_SIZE + 64 + len(_EPID_MAGIC) or not sig.endswith(_EPID_MAGIC):
        return False
    pseudonym, rs = sig[:_EPID_PSEUDONYM_SIZE], sig[_EPID_PSEUDONYM_SIZE : _EPID_PSEUDONYM_SIZE + 64]
    der = encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big"))
    try:
        group_public_key.verify(der, quote.raw[:SIGNED_SIZE] + pseudonym, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _tcb_level(components: list[int], pce_svn: int, status: str, advisories: list[str]) -> dict[str, Any]:
    level: dict[str, Any] = {
        "tcb": {"sgxtcbcomponents": [{"svn": c} for c in components], "pcesvn": pce_svn},
        "tcbDate": "2024-01-01T00:00:00Z",
        "tcbStatus": status,
    }
    if advisories:
        level["advisoryIDs"] = advisories
    return level


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    *,
    ca: bool,
    path: int | None = None,
    sgx: bytes | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path if ca else None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        # Intel's profile: every certificate names its issuer's key and where its CRL is published
        # (independent verifiers such as dcap-qvl expect both).
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [
                            x509.UniformResourceIdentifier(
                                f"{SIM_CRL_URL}/{_crl_file(issuer.subject if issuer else subject)}"
                            )
                        ],
                        None,
                        None,
                        None,
                    )
                ]
            ),
            critical=False,
        )
    )
    if sgx is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX_EXTENSIONS_OID), sgx), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _crl(
    key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate, this: datetime, next_: datetime, revoked: list[int]
) -> bytes:
    # Intel's CRL profile (v2 CRLs with CRL Number and Authority Key Identifier): dcap-qvl refuses a
    # CRL without them (MalformedExtensions). The number grows with the issue time, as a CRL's must.
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this)
        .next_update(next_)
        .add_extension(x509.CRLNumber(int(this.timestamp())), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(this).build()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _crl_file(issuer: x509.Name) -> str:
    """The CRL file a simulated CA publishes, named after it as Intel names its CRLs."""
    cn = issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    return str(cn).replace("SIMULATED ", "").replace(" ", "") + ".crl"


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
