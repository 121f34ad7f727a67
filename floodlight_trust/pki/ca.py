"""The Verification Manager's certificate authority.

A directory holds ``ca.key.pem`` (PKCS#8, encrypted with the CA password, mode 0600) and
``ca.cert.pem`` (self-signed). Issued certificates and revocations live in
:class:`~floodlight_trust.storage.stores.CertificateStore` of the deployment's storage. Every certificate carries a CRL
distribution point (Floodlight's JVM, started with the revocation flags, refuses a client
certificate without one) and an AIA OCSP URL.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID, NameOID

from floodlight_trust import fileio
from floodlight_trust.errors import InputError, Location, SecretError
from floodlight_trust.pki import der
from floodlight_trust.pki.crl import build_crl
from floodlight_trust.pki.grants import REST_GRANTS_OID, VNF_POLICY_OID, RestGrant, encode_grants
from floodlight_trust.pki.keys import (
    PrivateKey,
    PublicKey,
    check_subject_key,
    generate_private_key,
    parse_key_type,
    signing_hash,
)
from floodlight_trust.pki.ocsp import build_ocsp_response
from floodlight_trust.pki.profile import CertificateProfile, KeyType, end_entity_key_usage
from floodlight_trust.pki.records import CertificateRecord
from floodlight_trust.secrets import Secret
from floodlight_trust.storage.stores import CertificateStore, Transaction

__all__ = ["CertificateAuthority", "IssuedCertificate", "SignedCertificate", "generate_private_key"]

KEY_FILE = "ca.key.pem"
CERT_FILE = "ca.cert.pem"
CA_VALIDITY = timedelta(days=3650)
# Certificates start slightly in the past so a peer whose clock lags a little accepts them.
BACKDATE = timedelta(minutes=1)


def parse_name(text: str, *, what: str = "subject") -> x509.Name:
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as e:
        detail = f": {e}" if str(e) else ""
        raise InputError(f"{what} {text!r} is not an RFC 4514 name{detail}", hint="e.g. CN=vnf-a,O=example") from None
    if len(name) == 0:
        raise InputError(f"{what} must not be empty")
    return name


# RFC 4514 attribute names and values that need no escaping: the common subjects (CN=vnf-a,O=example).
_PLAIN_ATTRIBUTE = re.compile(r"([A-Z]+)=([A-Za-z0-9._:@/-](?:[A-Za-z0-9 ._:@/-]*[A-Za-z0-9._:@/-])?)\Z")
_PLAIN_OIDS = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
               "C": NameOID.COUNTRY_NAME, "L": NameOID.LOCALITY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME,
               "DC": NameOID.DOMAIN_COMPONENT}  # fmt: skip


def _plain_attributes(text: str) -> list[tuple[str, str]] | None:
    """The (name, value) of each comma-separated attribute of ``text``, in order, when every one is
    plain (no escapes, quotes, multi-valued RDNs or hex values) and named in ``_PLAIN_OIDS``; else None."""
    pairs = []
    for part in text.split(","):
        plain = _PLAIN_ATTRIBUTE.match(part)
        if plain is None or plain.group(1) not in _PLAIN_OIDS:
            return None
        pairs.append((plain.group(1), plain.group(2)))
    return pairs


def _plain_name(text: str) -> x509.Name | None:
    """``text`` as cryptography's RFC 4514 parser reads it (the last attribute first, one per RDN),
    when it is plain (:func:`_plain_attributes`); else None (then that parser decides). A quarter of
    the parser's cost, for the subject of every enrollment."""
    pairs = _plain_attributes(text)
    if pairs is None:
        return None
    attributes = []
    for key, value in pairs:
        try:
            attributes.append(x509.NameAttribute(_PLAIN_OIDS[key], value))
        except ValueError:  # (e.g. a country that is not two letters: the parser says so)
            return None
    return x509.Name([x509.RelativeDistinguishedName([a]) for a in reversed(attributes)])


@functools.lru_cache(maxsize=4096)
def _subject_name(text: str) -> x509.Name:
    """A profile's rendered subject as a Name (immutable: parsed once per VNF name, not per issue)."""
    return _plain_name(text) or parse_name(text)


# The string types cryptography writes these attributes with (x509.name._NAMEOID_DEFAULT_TYPE):
# UTF8String but for the country (PrintableString) and domain components (IA5String).
_UTF8, _PRINTABLE, _IA5 = 0x0C, 0x13, 0x16
_PLAIN_DER = {
    key: (der.oid(oid.dotted_string), _PRINTABLE if key == "C" else _IA5 if key == "DC" else _UTF8)
    for key, oid in _PLAIN_OIDS.items()
}
_COUNTRY = re.compile(r"[A-Za-z0-9]{2}\Z")  # (two PrintableString characters, as NameAttribute requires)
_CN_MAX = 64  # the longest common name NameAttribute takes (x509.name._NAMEOID_LENGTH_LIMIT)


@functools.lru_cache(maxsize=4096)
def _plain_name_der(text: str) -> bytes | None:
    """The DER of :func:`_plain_name` of ``text`` (what ``x509.Name.public_bytes`` writes for it),
    written directly; None when ``text`` is not plain (then cryptography encodes the Name). Written
    once per VNF name for both the certificate and its record's subject string."""
    pairs = _plain_attributes(text)
    if pairs is None:
        return None
    rdns = []
    for key, value in pairs:
        oid, string_type = _PLAIN_DER[key]
        if (string_type == _PRINTABLE and not _COUNTRY.match(value)) or (key == "CN" and len(value) > _CN_MAX):
            return None  # (NameAttribute refuses it: the parser names the problem)
        attribute = der.tlv(der.SEQUENCE, oid + der.tlv(string_type, value.encode()))
        rdns.append(der.tlv(der.SET, attribute))
    return der.tlv(der.SEQUENCE, b"".join(reversed(rdns)))


@functools.lru_cache(maxsize=4096)
def _subject_text(text: str) -> str:
    """The RFC 4514 string of :func:`_subject_name` (what a record of a certificate with that
    subject says: ``certificate.subject.rfc4514_string()``), made once per VNF name. A plain
    subject (no escapes) is its own RFC 4514 string."""
    if _plain_name_der(text) is not None:
        return text
    return _subject_name(text).rfc4514_string()


@functools.lru_cache(maxsize=4096)
def _subject_der(text: str) -> bytes:
    """The DER of :func:`_subject_name` (the builder encodes the same Name the same way)."""
    return _plain_name_der(text) or _subject_name(text).public_bytes()


@functools.lru_cache(maxsize=4096)
def _san_extension(dns: tuple[str, ...], uris: tuple[str, ...]) -> bytes:
    """The subjectAltName extension of a rendered profile's names (DNS names first), encoded once per
    VNF name: GeneralNames of [2] dNSName and [6] uniformResourceIdentifier IA5Strings, as
    cryptography writes them; names that are not ASCII go to cryptography (which refuses them)."""
    if all(n.isascii() for n in dns) and all(u.isascii() for u in uris):
        value = der.tlv(
            der.SEQUENCE, b"".join([der.tlv(0x82, d.encode()) for d in dns] + [der.tlv(0x86, u.encode()) for u in uris])
        )
    else:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        value = x509.SubjectAlternativeName(names).public_bytes()
    return der.extension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string, False, value)


@functools.lru_cache(maxsize=256)
def _grants_extension(grants: tuple[RestGrant, ...]) -> bytes:
    """The REST grants extension of an enroll rule's grants (``pki/grants.py``), encoded once per rule."""
    return der.extension(REST_GRANTS_OID, False, encode_grants(grants))


def _encoded(value: x509.ExtensionType, *, critical: bool) -> x509.Extension[x509.ExtensionType]:
    """``value`` as an extension whose DER is computed now (the same bytes the builder would write)."""
    return x509.Extension(value.oid, critical, x509.UnrecognizedExtension(value.oid, value.public_bytes()))


@dataclass(frozen=True, slots=True)
class _FixedExtensions:
    crl_url: str  # what they were encoded from: a CA whose URLs change encodes them again
    ocsp_url: str
    template: _Template


@dataclass(frozen=True, slots=True)
class _Template:
    """The DER of what every certificate of one CA writes alike (RFC 5280 TBSCertificate fields and
    extensions), around which :meth:`CertificateAuthority.sign` writes the parts that change:
    serial, validity, subject, key, key identifier, names and grants."""

    version: bytes  # [0] EXPLICIT v3
    algorithm: bytes  # the signature AlgorithmIdentifier (in the TBSCertificate and after it)
    issuer: bytes
    basic_constraints: bytes
    key_usage: bytes
    key_usage_rsa: bytes
    extended_key_usage: bytes
    authority_key_identifier: bytes
    crl_distribution_points: bytes
    authority_information_access: bytes
    vnf_policy: bytes
    ecdsa: ec.ECDSA  # the signature algorithm of an EC CA key (signing_hash's hash)


# The subjectKeyIdentifier extension up to its 20 bytes of SHA-1 (an extension whose length never changes).
_SKI_PREFIX = der.extension(ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string, False, der.tlv(0x04, bytes(20)))[:-20]

# The signature algorithms of the CA keys signing_hash picks a hash for: AlgorithmIdentifier DER.
_ECDSA_SHA256 = der.tlv(der.SEQUENCE, der.oid("1.2.840.10045.4.3.2"))
_ECDSA_SHA384 = der.tlv(der.SEQUENCE, der.oid("1.2.840.10045.4.3.3"))
_RSA_SHA256 = der.tlv(der.SEQUENCE, der.oid("1.2.840.113549.1.1.11") + b"\x05\x00")  # (NULL parameters)
_RSA_SHA384 = der.tlv(der.SEQUENCE, der.oid("1.2.840.113549.1.1.12") + b"\x05\x00")


def _algorithm(key: PrivateKey) -> bytes:
    sha384 = signing_hash(key).name == "sha384"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return _ECDSA_SHA384 if sha384 else _ECDSA_SHA256
    return _RSA_SHA384 if sha384 else _RSA_SHA256


def _extension_der(e: x509.Extension[x509.ExtensionType]) -> bytes:
    value = e.value
    assert isinstance(value, x509.UnrecognizedExtension)  # (_encoded made it: its DER, computed once)
    return der.extension(e.oid.dotted_string, e.critical, value.value)


@dataclass(frozen=True, slots=True)
class SignedCertificate:
    """A certificate signed and NOT yet recorded (:meth:`CertificateAuthority.sign_encoded`), with its
    encodings and the record that records it (``CertificateStore.record``), each made once."""

    certificate: x509.Certificate
    der: bytes
    pem: bytes
    record: CertificateRecord  # issued_at: the ``at`` it was signed for
    spki: bytes  # the certified key's SubjectPublicKeyInfo DER (as the certificate carries it)


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    certificate: x509.Certificate
    record: CertificateRecord

    @property
    def serial(self) -> int:
        return self.certificate.serial_number

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)


class CertificateAuthority:
    """An opened CA: its certificate, its key (in memory only) and its records."""

    def __init__(
        self,
        directory: Path,
        certificate: x509.Certificate,
        key: PrivateKey,
        records: CertificateStore | None,
        *,
        crl_url: str,
        ocsp_url: str,
    ):
        self.directory = directory
        self.certificate = certificate
        self._key = key
        self.records = records
        self.crl_url = crl_url
        self.ocsp_url = ocsp_url
        self._fixed: _FixedExtensions | None = None
        self._pem: tuple[x509.Certificate, bytes] | None = None
        self._nonce_key: tuple[PrivateKey, bytes] | None = None

    def __repr__(self) -> str:
        return f"CertificateAuthority({self.certificate.subject.rfc4514_string()!r}, dir={str(self.directory)!r})"

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def cert_path(self) -> Path:
        return self.directory / CERT_FILE

    @property
    def certificate_pem(self) -> bytes:
        """The CA certificate's PEM (sent with every issued certificate: encoded once per certificate)."""
        cached = self._pem
        if cached is None or cached[0] is not self.certificate:
            cached = self._pem = (self.certificate, self.certificate.public_bytes(serialization.Encoding.PEM))
        return cached[1]

    def nonce_key(self) -> bytes:
        """The key that authenticates this VM's challenge nonces (``manager/nonces.py``): HKDF-SHA256
        of the CA's private key under a label of its own, so every replica holding the CA holds it,
        nothing new is stored, and it is as protected at rest as the CA key (encrypted, 0600). The
        HKDF output reveals nothing of the signing key; a new CA key (``rotate-ca``) is a new nonce key."""
        cached = self._nonce_key
        if cached is None or cached[0] is not self._key:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.kdf.hkdf import HKDF

            secret = self._key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            derived = HKDF(hashes.SHA256(), 32, salt=None, info=b"floodlight-trust/nonce-key/v1").derive(secret)
            cached = self._nonce_key = (self._key, derived)
        return cached[1]

    # -- creation and opening -------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: Path,
        password: Secret,
        *,
        key_type: KeyType | str = KeyType.EC_P256,
        subject: str,
        crl_url: str,
        ocsp_url: str,
        at: datetime,
        records: CertificateStore | None = None,
    ) -> CertificateAuthority:
        """Create a new CA in ``directory``; refuses if a CA (key or certificate) is already there."""
        directory = Path(directory)
        kt = parse_key_type(key_type)
        if kt not in (KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_3072):
            raise InputError(f"CA key type {kt.value} not offered", hint="use ec-p256 (default) or rsa-3072")
        if len(password.reveal()) < 8:
            raise SecretError(f"CA key password from {password.source} is shorter than 8 characters")
        name = parse_name(subject)
        for existing in (directory / KEY_FILE, directory / CERT_FILE):
            if existing.exists():
                raise InputError(
                    "a CA already exists here; refusing to overwrite it",
                    location=Location(str(existing)),
                    hint="use another ca.dir, or remove the old CA deliberately",
                )
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = generate_private_key(kt)
        public = key.public_key()
        start = at.astimezone(UTC) - BACKDATE
        ski = x509.SubjectKeyIdentifier.from_public_key(public)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, signing_hash(key))
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.reveal_bytes()),
        )
        # Key first: a crash between the two writes leaves a key without a certificate, which
        # `init` refuses to overwrite and `open` reports, rather than a certificate without a key.
        fileio.atomic_write(directory / KEY_FILE, key_pem, mode=0o600)
        fileio.atomic_write(directory / CERT_FILE, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        return cls(directory, cert, key, records, crl_url=crl_url, ocsp_url=ocsp_url)

    @classmethod
    def open(
        cls,
        directory: Path,
        password: Secret,
        records: CertificateStore | None,
        *,
        crl_url: str,
        ocsp_url: str,
    ) -> CertificateAuthority:
        """Open the CA in ``directory``. A wrong password is a SecretError naming the key file."""
        directory = Path(directory)
        cert = load_ca_certificate(directory)
        key_path = directory / KEY_FILE
        data = fileio.read_bytes(key_path, what="CA key")
        try:
            key = serialization.load_pem_private_key(data, password.reveal_bytes())
        except (ValueError, TypeError):
            raise SecretError(
                f"cannot decrypt the CA key with the password from {password.source} (wrong password or damaged file)",
                location=Location(str(key_path)),
            ) from None
        if not isinstance(key, PrivateKey):
            raise InputError("CA key is neither EC nor RSA", location=Location(str(key_path)))
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, pub) != cert.public_key().public_bytes(
            serialization.Encoding.DER, pub
        ):
            raise InputError("CA key does not belong to the CA certificate", location=Location(str(key_path)))
        if os.name == "posix" and key_path.stat().st_mode & 0o077:
            raise SecretError(
                "CA key file is accessible by group or others",
                location=Location(str(key_path)),
                hint=f"chmod 600 {key_path}",
            )
        return cls(directory, cert, key, records, crl_url=crl_url, ocsp_url=ocsp_url)

    # -- issuing and revoking -------------------------------------------------------------------

    def _records(self, tx: Transaction | None = None) -> CertificateStore:
        """This CA's records, in ``tx`` when given (then they commit or roll back with it)."""
        if self.records is None:
            raise InputError("this CA was opened without certificate records; cannot issue or revoke")
        return tx.certificates(self.records.kind) if tx is not None else self.records

    def issue(
        self,
        public_key: object,
        profile: CertificateProfile,
        *,
        at: datetime,
        tx: Transaction | None = None,
    ) -> IssuedCertificate:
        """Sign a TLS client certificate for ``public_key`` following ``profile``; record it (in ``tx``).

        Serial: 159 random bits. Extensions: clientAuth EKU, SANs from the profile, CRL distribution
        point and AIA OCSP at this CA's URLs; for a VNF profile also the VNF certificate policy and the
        REST grants extension (``pki/grants.py``). Validity never exceeds the CA's own.
        """
        cert = self.sign(public_key, profile, at=at)
        record = self._records(tx).record_issued(cert, at=at)
        return IssuedCertificate(cert, record)

    def sign(self, public_key: object, profile: CertificateProfile, *, at: datetime) -> x509.Certificate:
        """The certificate :meth:`issue` would issue, signed but NOT recorded.

        For callers that sign outside their write transaction and record the certificate inside it
        (``tx.certificates(kind).record_issued(cert, at=...)``): such a certificate must not leave the process
        unless that transaction committed.
        """
        subject_key, start, end = self._validity(public_key, profile, at)
        return x509.load_der_x509_certificate(self._signed_der(subject_key, profile, start, end)[0])

    def _validity(
        self, public_key: object, profile: CertificateProfile, at: datetime
    ) -> tuple[PublicKey, datetime, datetime]:
        """The checked subject key and the validity (UTC) of a certificate issued at ``at``."""
        self._records()
        subject_key = check_subject_key(public_key)
        if profile.validity_seconds <= 0:
            raise InputError(f"certificate validity must be positive, got {profile.validity_seconds} s")
        start = at.astimezone(UTC) - BACKDATE
        end = min(
            at.astimezone(UTC) + timedelta(seconds=profile.validity_seconds), self.certificate.not_valid_after_utc
        )
        if end <= at:
            raise InputError("the CA certificate has expired; cannot issue", location=Location(str(self.cert_path)))
        return subject_key, start, end

    def _signed_der(
        self, subject_key: PublicKey, profile: CertificateProfile, start: datetime, end: datetime
    ) -> tuple[bytes, int, bytes]:
        """The signed certificate's DER, its serial and the key's SPKI DER: what ``x509.CertificateBuilder`` writes for
        the same fields and extensions (DER has one encoding; tests/pki/test_ca.py compares them
        byte for byte), written from this CA's template: about half the builder's CPU (issue 15)."""
        t = self._fixed_extensions().template
        spki = subject_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        # RFC 5280 key identifier method 1, as x509.SubjectKeyIdentifier.from_public_key computes it
        ski = _SKI_PREFIX + hashlib.sha1(der.bit_string_bits(spki), usedforsecurity=False).digest()
        extensions = [
            t.basic_constraints,
            t.key_usage if isinstance(subject_key, ec.EllipticCurvePublicKey) else t.key_usage_rsa,
            t.extended_key_usage,
            ski,
            t.authority_key_identifier,
            t.crl_distribution_points,
            t.authority_information_access,
        ]
        if profile.san_dns or profile.san_uris:
            extensions.append(_san_extension(profile.san_dns, profile.san_uris))
        if profile.vnf:  # the controller's proof that this is a VNF certificate, and what it may call
            extensions += [t.vnf_policy, _grants_extension(profile.rest_grants)]
        serial = x509.random_serial_number()
        tbs = der.tlv(
            der.SEQUENCE,
            t.version
            + der.integer(serial)
            + t.algorithm
            + t.issuer
            + der.tlv(der.SEQUENCE, der.time(start) + der.time(end))
            + _subject_der(profile.subject)
            + spki
            + der.tlv(0xA3, der.tlv(der.SEQUENCE, b"".join(extensions))),  # each OID once, by construction
        )
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            signature = key.sign(tbs, t.ecdsa)
        else:
            signature = key.sign(tbs, padding.PKCS1v15(), signing_hash(key))  # (the builder's RSA padding)
        return der.tlv(der.SEQUENCE, tbs + t.algorithm + der.tlv(0x03, b"\x00" + signature)), serial, spki

    def sign_encoded(self, public_key: object, profile: CertificateProfile, *, at: datetime) -> SignedCertificate:
        """:meth:`sign`, with the certificate's DER and PEM and its record (what ``record_issued``
        would record for it at ``at``), built from what signing made: nothing encoded twice."""
        subject_key, start, end = self._validity(public_key, profile, at)
        certificate_der, serial, spki = self._signed_der(subject_key, profile, start, end)
        certificate = x509.load_der_x509_certificate(certificate_der)
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        record = CertificateRecord(
            serial=serial,
            subject=_subject_text(profile.subject),  # the Name signed (from the same cache)
            not_before=start.replace(microsecond=0),  # (what the certificate says: whole seconds)
            not_after=end.replace(microsecond=0),
            issued_at=at.astimezone(UTC),
            sha256=hashlib.sha256(certificate_der).hexdigest(),
            pem=pem.decode("ascii"),
        )
        return SignedCertificate(certificate, certificate_der, pem, record, spki)

    def _fixed_extensions(self) -> _FixedExtensions:
        """What every certificate of this CA writes alike (its extensions, issuer and signature
        algorithm), encoded once: :meth:`_signed_der` writes it around each certificate's own parts."""
        fixed = self._fixed
        if fixed is not None and fixed.crl_url == self.crl_url and fixed.ocsp_url == self.ocsp_url:
            return fixed
        crl_dp = x509.CRLDistributionPoints(
            [
                x509.DistributionPoint(
                    full_name=[x509.UniformResourceIdentifier(self.crl_url)],
                    relative_name=None,
                    reasons=None,
                    crl_issuer=None,
                )
            ]
        )
        aia = x509.AuthorityInformationAccess(
            [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(self.ocsp_url))]
        )
        encoded = dict(  # the same objects the builder would encode, encoded once
            basic_constraints=_encoded(x509.BasicConstraints(ca=False, path_length=None), critical=True),
            key_usage=_encoded(end_entity_key_usage(key_encipherment=False), critical=True),
            key_usage_rsa=_encoded(end_entity_key_usage(key_encipherment=True), critical=True),
            extended_key_usage=_encoded(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False),
            authority_key_identifier=_encoded(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False
            ),
            crl_distribution_points=_encoded(crl_dp, critical=False),
            authority_information_access=_encoded(aia, critical=False),
            vnf_policy=_encoded(
                x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(VNF_POLICY_OID), None)]),
                critical=False,
            ),
        )
        template = _Template(
            version=der.tlv(0xA0, der.integer(2)),
            algorithm=_algorithm(self._key),
            issuer=self.certificate.subject.public_bytes(),
            ecdsa=ec.ECDSA(signing_hash(self._key)),
            **{name: _extension_der(e) for name, e in encoded.items()},
        )
        fixed = _FixedExtensions(crl_url=self.crl_url, ocsp_url=self.ocsp_url, template=template)
        self._fixed = fixed
        return fixed

    def sign_provisioning(self, statement: bytes) -> bytes:
        """Sign a provisioning statement (``protocol/provisioning.py``): the enclave, pinning this CA,
        checks that the credentials it receives were issued for its own enrollment."""
        from floodlight_trust.protocol.provisioning import sign_statement

        return sign_statement(self._key, statement)

    def revoke(self, serial: int, reason: str, *, at: datetime, tx: Transaction | None = None) -> CertificateRecord:
        """Revoke ``serial`` (in ``tx`` when given); it appears on every CRL signed from ``at`` on."""
        return self._records(tx).revoke(serial, reason, at)

    def crl(self, *, at: datetime, next_update: timedelta) -> x509.CertificateRevocationList:
        """The full CRL of ``at`` (whole seconds), valid until ``at + next_update``: the same bytes for
        the same records and ``at``, whichever process signs it (``pki/crl.py``)."""
        return build_crl(self.certificate, self._key, self._records().revoked(), at=at, next_update=next_update)

    def ocsp_response(
        self,
        request_der: bytes,
        *,
        at: datetime,
        validity: timedelta = timedelta(minutes=1),
        refresh: timedelta | None = None,
    ) -> bytes:
        """The DER OCSP response to ``request_der`` (see :func:`build_ocsp_response`)."""
        return build_ocsp_response(
            request_der,
            issuer=self.certificate,
            issuer_key=self._key,
            lookup=self._records().get,
            at=at,
            validity=validity,
            refresh=refresh,
        )


def load_ca_certificate(directory: Path) -> x509.Certificate:
    """The CA certificate of ``directory`` (no password needed)."""
    path = Path(directory) / CERT_FILE
    data = fileio.read_bytes(path, what="CA certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise InputError(f"not a PEM certificate: {e}", location=Location(str(path))) from None
