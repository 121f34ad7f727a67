"""The SIMULATED SGX PKI: certificates and CRLs in Intel's profile (root CA, PCK Processor CA, PCK
certificate with the SGX extension, TCB signing certificate), and raw P-256 signatures as Intel's
collateral and quotes carry them."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from floodlight_trust.evidence.sgx_quote import SGX_EXTENSIONS_OID, oid_der

# Where the simulated CAs say their CRLs are published (never fetched: the collateral carries them).
SIM_CRL_URL = "https://sgx-simulated.invalid/crl"
NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)


# -- DER for the SGX extension (only what it needs) ------------------------------------------------


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


# -- certificates, CRLs, signatures ---------------------------------------------------------------


def ca_name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "floodlight-trust SIMULATED SGX"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
        ]
    )


def raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate(
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
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
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


def crl(
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
