"""The CA: files on disk, certificates issued, records, revocation, CRL and OCSP."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ExtensionOID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import InputError, SecretError
from floodlight_trust.pki.ca import CertificateAuthority, generate_private_key
from floodlight_trust.pki.crl import crl_der, crl_pem, load_crl
from floodlight_trust.pki.grants import HttpMethod, RestGrant
from floodlight_trust.pki.profile import CertificateProfile
from floodlight_trust.pki.records import parse_serial, serial_hex
from floodlight_trust.secrets import Secret
from floodlight_trust.storage.sqlite import SqliteStorage
from floodlight_trust.storage.stores import CertificateStore
from tests.support.cli import ftrust, state_config

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = Secret("correct horse battery", "env:TEST")
CRL_URL = "http://127.0.0.1:8990/crl.der"
OCSP_URL = "http://127.0.0.1:8990/ocsp"
PROFILE = CertificateProfile(san_uris=("urn:ftrust:vnf:{vnf}",), san_dns=("{vnf}.example",)).render(vnf="fw", host="h1")


@pytest.fixture
def storage(tmp_path: Path) -> SqliteStorage:
    return SqliteStorage(tmp_path / "state.db")


@pytest.fixture
def records(storage: SqliteStorage) -> CertificateStore:
    return storage.certificates()


@pytest.fixture
def ca(tmp_path: Path, records: CertificateStore) -> CertificateAuthority:
    return CertificateAuthority.init(
        tmp_path / "ca", PASSWORD, subject="CN=Test VNF CA", crl_url=CRL_URL, ocsp_url=OCSP_URL, at=AT, records=records
    )


def test_init_writes_encrypted_key_0600_and_refuses_overwrite(tmp_path: Path, ca: CertificateAuthority) -> None:
    key_file = tmp_path / "ca" / "ca.key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    cert = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.cert.pem").read_bytes())
    assert cert.subject.rfc4514_string() == "CN=Test VNF CA"
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    with pytest.raises(InputError, match="already exists"):
        CertificateAuthority.init(tmp_path / "ca", PASSWORD, subject="CN=x", crl_url=CRL_URL, ocsp_url=OCSP_URL, at=AT)


def test_wrong_password_names_the_key_file(
    tmp_path: Path, ca: CertificateAuthority, records: CertificateStore
) -> None:
    with pytest.raises(SecretError) as info:
        CertificateAuthority.open(tmp_path / "ca", Secret("wrong password", "env:X"), records, crl_url="", ocsp_url="")
    assert str(info.value).startswith(f"{tmp_path / 'ca' / 'ca.key.pem'}: cannot decrypt the CA key")
    assert "wrong password" not in str(info.value).split("(")[0]


def test_issued_certificate_has_the_profile_and_urls_and_is_recorded(ca: CertificateAuthority) -> None:
    key = generate_private_key("ec-p256")
    issued = ca.issue(key.public_key(), PROFILE, at=AT)
    cert = issued.certificate
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject.rfc4514_string() == "CN=fw"
    assert 0 < cert.serial_number < 2**159
    assert cert.not_valid_after_utc == AT + timedelta(seconds=3600)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:ftrust:vnf:fw"]
    assert san.get_values_for_type(x509.DNSName) == ["fw.example"]
    dp = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    assert [n.value for n in dp[0].full_name] == [CRL_URL]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(a.access_method, a.access_location.value) for a in aia] == [(AuthorityInformationAccessOID.OCSP, OCSP_URL)]
    record = ca.records.get(cert.serial_number)  # type: ignore[union-attr]
    assert record is not None and record.subject == "CN=fw" and record.status(AT) == "valid"
    assert record.sha256 == cert.fingerprint(hashes.SHA256()).hex()


def _reference_tbs(ca: CertificateAuthority, cert: x509.Certificate, profile: CertificateProfile) -> bytes:
    """The to-be-signed part the plain cryptography builder writes for the same certificate (the
    code ``CertificateAuthority.sign`` ran before it pre-encoded the CA's fixed extensions)."""
    from cryptography.x509.oid import ExtensionOID as Oid

    from floodlight_trust.pki.grants import REST_GRANTS_OID, VNF_POLICY_OID, encode_grants
    from floodlight_trust.pki.profile import end_entity_key_usage

    key = cert.public_key()
    issuer_key = ca.certificate.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string(profile.subject))
        .issuer_name(ca.certificate.subject)
        .public_key(key)  # type: ignore[arg-type]
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(end_entity_key_usage(key_encipherment=not hasattr(key, "curve")), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)  # type: ignore[arg-type]
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False)  # type: ignore[arg-type]
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(CRL_URL)], None, None, None)]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(OCSP_URL))]
            ),
            critical=False,
        )
    )
    sans = [x509.DNSName(d) for d in profile.san_dns] + [x509.UniformResourceIdentifier(u) for u in profile.san_uris]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if profile.vnf:
        builder = builder.add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(VNF_POLICY_OID), None)]),
            critical=False,
        ).add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(REST_GRANTS_OID), encode_grants(profile.rest_grants)),
            critical=False,
        )
    reference = builder.sign(ca._key, hashes.SHA256())
    assert reference.extensions.get_extension_for_oid(Oid.BASIC_CONSTRAINTS).critical
    return reference.tbs_certificate_bytes


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048"])
@pytest.mark.parametrize("vnf", [True, False])
def test_issued_certificate_is_what_the_plain_builder_writes(
    ca: CertificateAuthority, key_type: str, vnf: bool
) -> None:
    """Issue 15 pre-encodes the extensions every certificate of a CA shares: the signed bytes are
    the same as the plain builder's, extension for extension (order, criticality, encoding)."""
    from floodlight_trust.pki.grants import HttpMethod, RestGrant

    profile = CertificateProfile(san_dns=("{vnf}.example",), rest_grants=(RestGrant(HttpMethod.GET, "/wm/core/**"),))
    profile = profile.render(vnf="fw", host="h1") if vnf else profile
    if not vnf:
        profile = CertificateProfile(subject="CN=admin,O=example", san_uris=())
    cert = ca.issue(generate_private_key(key_type).public_key(), profile, at=AT).certificate
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.tbs_certificate_bytes == _reference_tbs(ca, cert, profile)


def test_rsa_3072_ca_issues_for_rsa_keys(tmp_path: Path, records: CertificateStore) -> None:
    ca = CertificateAuthority.init(
        tmp_path / "rsa", PASSWORD, key_type="rsa-3072", subject="CN=RSA CA", crl_url=CRL_URL, ocsp_url=OCSP_URL,
        at=AT, records=records,
    )  # fmt: skip
    assert ca.certificate.public_key().key_size == 3072  # type: ignore[union-attr]
    issued = ca.issue(generate_private_key("rsa-2048").public_key(), PROFILE, at=AT)
    issued.certificate.verify_directly_issued_by(ca.certificate)


def test_issue_in_a_rolled_back_transaction_leaves_no_record(ca: CertificateAuthority, storage: SqliteStorage) -> None:
    assert ca.records is not None
    with pytest.raises(RuntimeError), storage.transaction() as tx:
        issued = ca.issue(generate_private_key().public_key(), PROFILE, at=AT, tx=tx)
        raise RuntimeError("crash after issuing, before the enrollment is recorded")
    assert ca.records.get(issued.serial) is None
    assert ca.records.list() == []


def test_weak_keys_and_bad_subjects_are_refused(ca: CertificateAuthority) -> None:
    with pytest.raises(InputError, match="RFC 4514"):
        ca.issue(generate_private_key().public_key(), CertificateProfile(subject="not a name"), at=AT)
    with pytest.raises(InputError, match="unsupported public key"):
        ca.issue(b"bytes", PROFILE, at=AT)


def test_revocation_reaches_crl_and_ocsp(ca: CertificateAuthority) -> None:
    good = ca.issue(generate_private_key().public_key(), PROFILE, at=AT)
    bad = ca.issue(generate_private_key().public_key(), PROFILE, at=AT)
    later = AT + timedelta(minutes=5)
    ca.revoke(bad.serial, "key-compromise", at=later)
    again = ca.revoke(bad.serial, "superseded", at=later + timedelta(minutes=1))
    assert again.revoked_at == later and again.revocation_reason == "keyCompromise"  # the first revocation stands

    crl = ca.crl(at=later, next_update=timedelta(seconds=60))
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.next_update_utc == later + timedelta(seconds=60)
    entry = crl.get_revoked_certificate_by_serial_number(bad.serial)
    assert entry is not None and entry.revocation_date_utc == later
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert crl.get_revoked_certificate_by_serial_number(good.serial) is None
    assert load_crl(crl_der(crl)) == crl and load_crl(crl_pem(crl)) == crl
    # Expired certificates drop off the list.
    assert len(list(ca.crl(at=AT + timedelta(hours=2), next_update=timedelta(seconds=60)))) == 0

    def status(cert: x509.Certificate) -> ocsp.OCSPResponse:
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, ca.certificate, hashes.SHA256()).build()
        der = ca.ocsp_response(request.public_bytes(serialization.Encoding.DER), at=later)
        return ocsp.load_der_ocsp_response(der)

    assert status(good.certificate).certificate_status == ocsp.OCSPCertStatus.GOOD
    revoked = status(bad.certificate)
    assert revoked.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason == x509.ReasonFlags.key_compromise
    bogus = ca.ocsp_response(b"\x30\x03junk", at=later)
    assert ocsp.load_der_ocsp_response(bogus).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_revoke_unknown_serial_and_bad_reason(ca: CertificateAuthority) -> None:
    with pytest.raises(InputError, match="no certificate with serial 1f"):
        ca.revoke(0x1F, "superseded", at=AT)
    issued = ca.issue(generate_private_key().public_key(), PROFILE, at=AT)
    with pytest.raises(InputError, match="unknown revocation reason"):
        ca.revoke(issued.serial, "because", at=AT)
    assert parse_serial("0x" + serial_hex(issued.serial).upper()) == issued.serial


def test_cli_lifecycle_and_one_line_errors(tmp_path: Path) -> None:
    import os

    env = dict(os.environ, FTRUST_CA_PASSWORD="cli password 1", FTRUST_KEY_PASSWORD="vnf key password")
    assert ftrust("ca", "init", config=state_config(tmp_path), env=env).returncode == 0
    again = ftrust("ca", "init", config=state_config(tmp_path), env=env)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert again.stderr.startswith("ftrust: error: ") and "a CA already exists here" in again.stderr
    out = tmp_path / "vnf.pem"
    r = ftrust("ca", "issue", "--subject", "CN=vnf-a", "--generate-key", str(tmp_path / "k.pem"),
               "--out", str(out), "--json", config=state_config(tmp_path), env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    import json

    serial = json.loads(r.stdout)["serial"]
    assert x509.load_pem_x509_certificate(out.read_bytes()).serial_number == int(serial, 16)
    assert ftrust("ca", "revoke", serial, "--reason", "cessation-of-operation",
                  config=state_config(tmp_path), env=env).returncode == 0  # fmt: skip
    crl_file = tmp_path / "crl.der"
    assert ftrust("ca", "crl", "--out", str(crl_file), config=state_config(tmp_path), env=env).returncode == 0
    assert load_crl(crl_file.read_bytes()).get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    listing = ftrust("ca", "list", config=state_config(tmp_path), env=env)
    assert serial in listing.stdout and "revoked" in listing.stdout
    wrong = ftrust(
        "ca", "crl", "--pem", config=state_config(tmp_path), env={**(dict(env, FTRUST_CA_PASSWORD="not it"))}
    )
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.splitlines()[0] == (
        f"ftrust: error: {tmp_path / 'state' / 'ca' / 'ca.key.pem'}: cannot decrypt the CA key with the password "
        "from env:FTRUST_CA_PASSWORD (wrong password or damaged file)"
    )
    bad = ftrust("ca", "revoke", "xyz", "--reason", "superseded", config=state_config(tmp_path), env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("ftrust: error: serial 'xyz' is not a hexadecimal number")
    # A key that cannot be written is refused before anything is issued or recorded.
    nowhere = tmp_path / "missing" / "k.pem"
    r = ftrust(
        "ca", "issue", "--subject", "CN=vnf-b", "--generate-key", str(nowhere), config=state_config(tmp_path), env=env
    )
    assert r.returncode == 2 and r.stderr == f"ftrust: error: {nowhere.parent}: output directory does not exist\n"
    assert "CN=vnf-b" not in ftrust("ca", "list", config=state_config(tmp_path), env=env).stdout
    r = ftrust("ca", "issue", "--subject", "not a name", "--generate-key", str(tmp_path / "b.pem"),
               config=state_config(tmp_path), env=env)  # fmt: skip
    assert (
        r.returncode == 2 and r.stderr.splitlines()[0] == "ftrust: error: subject 'not a name' is not an RFC 4514 name"
    )
    assert not (tmp_path / "b.pem").exists()


def test_a_ca_whose_urls_change_writes_the_new_ones(ca: CertificateAuthority) -> None:
    """The CA encodes its fixed extensions once; new CRL / OCSP URLs are encoded again, not kept stale."""
    key = generate_private_key("ec-p256").public_key()
    ca.issue(key, PROFILE, at=AT)
    ca.crl_url, ca.ocsp_url = "http://127.0.0.1:9999/crl.der", "http://127.0.0.1:9999/ocsp"
    cert = ca.issue(key, PROFILE, at=AT).certificate
    dp = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    assert [n.value for n in dp[0].full_name] == ["http://127.0.0.1:9999/crl.der"]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [a.access_location.value for a in aia] == ["http://127.0.0.1:9999/ocsp"]


def test_certificate_pem_is_the_certificates_pem(ca: CertificateAuthority, tmp_path: Path) -> None:
    assert ca.certificate_pem == (tmp_path / "ca" / "ca.cert.pem").read_bytes()
    assert ca.certificate_pem is ca.certificate_pem  # encoded once, not for every issued certificate
    x509.load_pem_x509_certificate(ca.certificate_pem).verify_directly_issued_by(ca.certificate)


SUBJECTS = [
    "CN=fw", "CN=vnf-a,O=example", "CN=a b,OU=x.y,O=ex:am/ple,C=DE", "CN=with\\,comma", "CN=\\#hash",
    "CN=quote\\\"d,O=o", "CN=a+O=multi-valued", "CN=trailing\\ ", "CN=ünïcödé,O=ex", "DC=org,DC=example,CN=fw",
    "L=Berlin,ST=Berlin,CN=x", "1.2.3.4=#0c03616263,CN=oid",
]  # fmt: skip


@pytest.mark.parametrize("subject", SUBJECTS)
def test_sign_encoded_records_what_record_issued_records(ca: CertificateAuthority, subject: str) -> None:
    """The enrollment records the record signing built (no second encoding, subject string, hash):
    it is what ``record_issued`` builds from the certificate, and the encodings are the certificate's."""
    profile = CertificateProfile(subject=subject, san_dns=("{vnf}.example",)).render(vnf="fw", host="h1")
    key = generate_private_key("ec-p256").public_key()
    signed = ca.sign_encoded(key, profile, at=AT + timedelta(microseconds=654321))
    cert = signed.certificate
    assert signed.der == cert.public_bytes(serialization.Encoding.DER)
    assert signed.pem == cert.public_bytes(serialization.Encoding.PEM)
    assert ca.records is not None
    assert ca.records.get(cert.serial_number) is None  # signed, not recorded
    assert signed.record == ca.records.record_issued(cert, at=AT + timedelta(microseconds=654321))
    assert signed.record.subject == cert.subject.rfc4514_string()
    assert ca.records.get(cert.serial_number) == signed.record
    with pytest.raises(InputError, match="already recorded"):  # a serial is recorded once, either way
        ca.records.record(signed.record)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12), min_size=1, max_size=3)
)
def test_the_recorded_subject_is_the_certificates_for_any_value(ca: CertificateAuthority, values: list[str]) -> None:
    """Any attribute value, escaped as RFC 4514 writes it: the record's subject string (made from the
    Name that was signed) is the one read back from the certificate's DER."""
    oids = [x509.NameOID.COMMON_NAME, x509.NameOID.ORGANIZATION_NAME, x509.NameOID.ORGANIZATIONAL_UNIT_NAME]
    subject = x509.Name([x509.NameAttribute(oid, v) for oid, v in zip(oids, values, strict=False)]).rfc4514_string()
    profile = CertificateProfile(subject=subject, san_uris=())
    signed = ca.sign_encoded(generate_private_key("ec-p256").public_key(), profile, at=AT)
    assert signed.record.subject == signed.certificate.subject.rfc4514_string()
    assert signed.record.subject == x509.load_der_x509_certificate(signed.der).subject.rfc4514_string()


# -- the certificate template (issue 15): byte for byte what the plain builder writes -----------------

_SUBJECT_KEYS: dict[str, object] = {}


def _subject_key(key_type: str) -> object:
    """One key per type for the whole module (RSA key generation is slow)."""
    if key_type not in _SUBJECT_KEYS:
        private = ec.generate_private_key(ec.SECP521R1()) if key_type == "ec-p521" else generate_private_key(key_type)
        _SUBJECT_KEYS[key_type] = private.public_key()
    return _SUBJECT_KEYS[key_type]


@pytest.fixture(scope="module")
def cas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertificateAuthority]:
    """A CA of each key type it offers, and one whose validity crosses 2050 (GeneralizedTime)."""
    tmp = tmp_path_factory.mktemp("cas")
    out = {}
    for name, key_type, at in (
        ("ec-p256", "ec-p256", AT), ("ec-p384", "ec-p384", AT), ("rsa-3072", "rsa-3072", AT),
        ("till-2055", "ec-p256", datetime(2045, 6, 1, tzinfo=UTC)),
    ):  # fmt: skip
        storage = SqliteStorage(tmp / f"{name}.db")
        out[name] = CertificateAuthority.init(
            tmp / name, PASSWORD, key_type=key_type, subject=f"CN=CA {name},O=floodlight-trust test",
            crl_url=CRL_URL + "?" + name, ocsp_url=OCSP_URL, at=at, records=storage.certificates(),
        )  # fmt: skip
    return out


def _builder_certificate(ca: CertificateAuthority, key: object, profile: CertificateProfile, *, serial: int,
                         at: datetime) -> x509.Certificate:  # fmt: skip
    """What CertificateAuthority.sign wrote with cryptography's builder before the template: the same
    objects, extensions in the same order, times as given (the builder drops the microseconds)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from floodlight_trust.pki.ca import BACKDATE
    from floodlight_trust.pki.grants import REST_GRANTS_OID, VNF_POLICY_OID, encode_grants
    from floodlight_trust.pki.keys import signing_hash
    from floodlight_trust.pki.profile import end_entity_key_usage

    start = at - BACKDATE
    end = min(at + timedelta(seconds=profile.validity_seconds), ca.certificate.not_valid_after_utc)
    sans = [x509.DNSName(d) for d in profile.san_dns] + [x509.UniformResourceIdentifier(u) for u in profile.san_uris]
    extensions: list[x509.ExtensionType] = [
        x509.BasicConstraints(ca=False, path_length=None),
        end_entity_key_usage(key_encipherment=isinstance(key, rsa.RSAPublicKey)),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
        x509.SubjectKeyIdentifier.from_public_key(key),  # type: ignore[arg-type]
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.certificate.public_key()),  # type: ignore[arg-type]
        x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(ca.crl_url)], None, None, None)]),
        x509.AuthorityInformationAccess(
            [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ca.ocsp_url))]
        ),
    ]
    if sans:
        extensions.append(x509.SubjectAlternativeName(sans))
    if profile.vnf:
        extensions.append(x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(VNF_POLICY_OID), None)]))
        grants = x509.ObjectIdentifier(REST_GRANTS_OID)
        extensions.append(x509.UnrecognizedExtension(grants, encode_grants(profile.rest_grants)))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string(profile.subject))
        .issuer_name(ca.certificate.subject)
        .public_key(key)  # type: ignore[arg-type]
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
    )
    for e in extensions:
        critical = isinstance(e, x509.BasicConstraints | x509.KeyUsage)
        builder = builder.add_extension(e, critical=critical)
    return builder.sign(ca._key, signing_hash(ca._key))


_GRANTS = st.lists(
    st.builds(
        RestGrant,
        st.sampled_from([HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.DELETE]),
        st.sampled_from(["/wm/core/**", "/wm/staticflowpusher/json", "/wm/device/*", "/**"]),
    ),
    max_size=3,
    unique=True,
).map(tuple)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ca_name=st.sampled_from(["ec-p256", "ec-p384", "rsa-3072", "till-2055"]),
    key_type=st.sampled_from(["ec-p256", "ec-p384", "ec-p521", "rsa-2048", "rsa-3072"]),
    subject=st.sampled_from(SUBJECTS),
    dns=st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True), max_size=3),
    uris=st.lists(
        st.from_regex(r"(urn:ftrust:vnf|spiffe://example\.org/vnf)[:/][a-z0-9-]{1,20}", fullmatch=True), max_size=2
    ),
    grants=_GRANTS,
    vnf=st.booleans(),
    validity=st.integers(1, 20 * 365 * 86400),
    offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4000)),
)
def test_each_certificate_is_what_the_plain_builder_writes_byte_for_byte(
    cas: dict[str, CertificateAuthority], ca_name: str, key_type: str, subject: str, dns: list[str],
    uris: list[str], grants: tuple[object, ...], vnf: bool, validity: int, offset: timedelta,
) -> None:  # fmt: skip
    """The signed TBSCertificate (serial, signature algorithm, issuer, validity as UTCTime or, from
    2050, GeneralizedTime, subject, key, every extension in order) is exactly the builder's for the
    same inputs; the certificate verifies under the CA; its DER and PEM are what cryptography writes."""
    ca = cas[ca_name]
    at = ca.certificate.not_valid_before_utc + timedelta(minutes=1, microseconds=123457) + offset
    if at >= ca.certificate.not_valid_after_utc:
        return
    profile = CertificateProfile(subject=subject, san_dns=tuple(dns), san_uris=tuple(uris), validity_seconds=validity,
                                 rest_grants=grants, vnf=vnf)  # type: ignore[arg-type]  # fmt: skip
    key = _subject_key(key_type)
    signed = ca.sign_encoded(key, profile, at=at)
    cert = signed.certificate
    reference = _builder_certificate(ca, key, profile, serial=cert.serial_number, at=at)
    assert cert.tbs_certificate_bytes == reference.tbs_certificate_bytes
    assert cert.signature_algorithm_oid == reference.signature_algorithm_oid
    cert.verify_directly_issued_by(ca.certificate)
    assert signed.der == cert.public_bytes(serialization.Encoding.DER)
    assert signed.pem == cert.public_bytes(serialization.Encoding.PEM)
    assert signed.spki == cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert signed.record.not_before == cert.not_valid_before_utc and signed.record.not_after == cert.not_valid_after_utc
    assert ca.sign(key, profile, at=at).tbs_certificate_bytes != cert.tbs_certificate_bytes  # a new serial each time


@pytest.mark.parametrize("ca_name", ["ec-p256", "ec-p384", "rsa-3072", "till-2055"])
@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
def test_the_template_around_2050_and_for_each_ca_key_is_the_builders(
    cas: dict[str, CertificateAuthority], ca_name: str, key_type: str
) -> None:
    """The edges the hypothesis test may miss: a validity ending in 2050 (GeneralizedTime) and
    starting in 2049 (UTCTime), a certificate cut at the CA's own end, every CA key type."""
    ca = cas[ca_name]
    ats = [AT + timedelta(microseconds=999999)]
    if ca_name == "till-2055":
        ats += [datetime(2049, 12, 31, 23, 30, 59, 999999, tzinfo=UTC), ca.certificate.not_valid_after_utc - timedelta(seconds=5)]
    for at in ats:
        profile = CertificateProfile(subject="CN=edge,O=example", san_uris=("urn:ftrust:vnf:edge",), validity_seconds=7200)
        signed = ca.sign_encoded(_subject_key(key_type), profile.render(vnf="edge", host="h"), at=at)
        reference = _builder_certificate(ca, _subject_key(key_type), profile.render(vnf="edge", host="h"),
                                         serial=signed.certificate.serial_number, at=at)  # fmt: skip
        assert signed.certificate.tbs_certificate_bytes == reference.tbs_certificate_bytes
        signed.certificate.verify_directly_issued_by(ca.certificate)
        assert signed.record.not_after == min(at.replace(microsecond=0) + timedelta(hours=2), ca.certificate.not_valid_after_utc)


# -- subjects and subjectAltNames written directly (issue 15): the DER cryptography writes ------------

_ATTRIBUTE = st.tuples(
    st.sampled_from(["CN", "O", "OU", "C", "L", "ST", "DC", "UID", "X"]),
    st.one_of(
        st.from_regex(r"[A-Za-z0-9._:@/-]([A-Za-z0-9 ._:@/-]{0,70}[A-Za-z0-9._:@/-])?", fullmatch=True),
        st.text(st.sampled_from("aZ9 #+,;=\\\"<>é@/"), min_size=1, max_size=4),
    ),
)


@settings(max_examples=300, deadline=None)
@given(attributes=st.lists(_ATTRIBUTE, min_size=1, max_size=4))
@example(attributes=[("CN", "a" * 64)])
@example(attributes=[("CN", "a" * 65)])  # longer than NameAttribute takes
@example(attributes=[("C", "DE"), ("DC", "org"), ("O", "ex")])
@example(attributes=[("C", "DEU")])
@example(attributes=[("C", "D@")])
def test_a_subject_written_directly_is_the_name_cryptography_writes(attributes: list[tuple[str, str]]) -> None:
    """What cryptography's RFC 4514 parser reads a subject as, DER and string, or its refusal."""
    from floodlight_trust.pki.ca import _plain_name_der, _subject_der, _subject_text

    text = ",".join(f"{k}={v}" for k, v in attributes)
    try:
        name = x509.Name.from_rfc4514_string(text)
        der = name.public_bytes()
    except ValueError:
        assert _plain_name_der(text) is None
        return
    assert _subject_der(text) == der
    assert _subject_text(text) == name.rfc4514_string()


@settings(max_examples=200, deadline=None)
@given(
    dns=st.lists(st.text(st.characters(max_codepoint=0x7F), max_size=30), max_size=3),
    uris=st.lists(st.text(st.characters(max_codepoint=0x7F), max_size=30), max_size=3),
)
def test_a_subject_alt_name_written_directly_is_the_one_cryptography_writes(dns: list[str], uris: list[str]) -> None:
    from floodlight_trust.pki import der
    from floodlight_trust.pki.ca import _san_extension

    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns] + [x509.UniformResourceIdentifier(u) for u in uris]
    value = x509.SubjectAlternativeName(names).public_bytes()
    assert _san_extension(tuple(dns), tuple(uris)) == der.extension("2.5.29.17", False, value)
    with pytest.raises(ValueError, match="A-label"):
        _san_extension(("ünï.example",), ())
