"""Issue 11.10: every parser, fed arbitrary or mutated real input, raises only the project's errors.

A fuzzing campaign found non-project exceptions in IAS report parsing and its signing-certificate
header, keystore loading (pyasn1 errors), policy files (a NUL in an import path), reference lists
(non-ASCII base64), the VM's own persisted claims and IMA state, and collateral parsing. Each parser
here gets a bounded hypothesis test (mutations of real evidence from tests/data plus arbitrary
input) whose only allowed outcome besides success is a :class:`FtrustError`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floodlight_trust.claims import claimset_from_json
from floodlight_trust.clients.collateral_files import load_collateral
from floodlight_trust.errors import FtrustError
from floodlight_trust.evidence import ias
from floodlight_trust.evidence.collateral import (
    collateral_from_json,
    crl_to_der,
    parse_qe_identity,
    parse_tcb_info,
)
from floodlight_trust.evidence.dcap import TrustAnchor, verify_quote
from floodlight_trust.evidence.ima import ImaState, appraise_measurement_list
from floodlight_trust.evidence.ima.signatures import parse_module_signature, parse_signature
from floodlight_trust.evidence.sgx_quote import parse_quote
from floodlight_trust.http.peer_json import parse_json
from floodlight_trust.policy_files import FILES
from floodlight_trust.protocol import SCHEMA_NAMES, validate
from policy_lang import compile_policy_text
from policy_lang.evaluate import HostMeasuredState
from policy_lang.reference import parse_keylime, parse_sha256sum, verify_dsse_envelope

DATA = Path(__file__).resolve().parents[1] / "data"
# Bounded in `make test`; FTRUST_FUZZ_EXAMPLES=5000 runs a longer campaign. CI replays the same
# examples every run (derandomize) so that main never turns red by chance; locally each run explores.
EXAMPLES = int(os.environ.get("FTRUST_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
AT = datetime(2024, 1, 1, tzinfo=UTC)


def only_project_errors(parse: Callable[[], Any]) -> None:
    try:
        parse()
    except FtrustError:
        pass


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, max_edits: int = 4) -> bytes:
    """``seed`` with a few byte flips, insertions, deletions or a truncation (real input, damaged)."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "truncate":
            del data[at:]
        else:
            data[at:at] = draw(st.sampled_from([b"\x00", b"\xff" * 4, b"\\ud800", b'"', b"{", b"[" * 64, b"\xc3("]))
    return bytes(data)


def fuzz_input(seed: bytes) -> st.SearchStrategy[bytes]:
    return mutated(seed) | st.binary(max_size=256)


def text_of(strategy: st.SearchStrategy[bytes]) -> st.SearchStrategy[str]:
    return strategy.map(lambda b: b.decode("utf-8", "replace"))


# -- IAS: report body and the signing-certificate and signature headers ----------------------------
IAS = DATA / "ias" / "sn_ok_production"
IAS_BODY = (IAS / "report.json").read_bytes()
IAS_SIG = (IAS / "x-iasreport-signature.b64").read_bytes()
IAS_CERT = (IAS / "x-iasreport-signing-certificate.pem").read_bytes()
IAS_ROOT = (DATA / "ias" / "ias_root_ca_cert.der").read_bytes()


@FUZZ
@given(body=fuzz_input(IAS_BODY))
def test_ias_report_body(body: bytes) -> None:
    only_project_errors(lambda: ias.parse_report(body))
    only_project_errors(lambda: ias.verify_report(body, IAS_SIG, IAS_CERT, IAS_ROOT, at=AT))


@FUZZ
@given(signature=fuzz_input(IAS_SIG), certificate=fuzz_input(IAS_CERT))
def test_ias_signature_and_signing_certificate_headers(signature: bytes, certificate: bytes) -> None:
    only_project_errors(lambda: ias.verify_report(IAS_BODY, signature, certificate, IAS_ROOT, at=AT))
    header = __import__("urllib.parse").parse.quote(certificate)  # the URL-encoded header form
    only_project_errors(lambda: ias.verify_report(IAS_BODY, IAS_SIG, header.encode(), IAS_ROOT, at=AT))


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(["id", "timestamp", "version", "isvEnclaveQuoteStatus",
                                            "isvEnclaveQuoteBody", "advisoryIDs", "nonce", "epidPseudonym"]),
                           st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.lists(st.integers(), max_size=2)
                           | st.dictionaries(st.text(max_size=2), st.integers(), max_size=2)))  # fmt: skip
def test_ias_report_fields_of_any_type(doc: dict[str, Any]) -> None:
    only_project_errors(lambda: ias.parse_report(json.dumps(doc).encode()))


# -- SGX quotes and collateral ---------------------------------------------------------------------
QUOTE = (DATA / "sgx-dcap" / "phala" / "sgx_quote").read_bytes()
COLLATERAL_JSON = (DATA / "sgx-dcap" / "phala" / "sgx_quote_collateral.json").read_bytes()
ROOT = TrustAnchor.intel()


@FUZZ
@given(quote=mutated(QUOTE, max_edits=2))
def test_dcap_quotes_parse_and_verify(quote: bytes) -> None:
    collateral = collateral_from_json(COLLATERAL_JSON)
    only_project_errors(lambda: parse_quote(quote))
    only_project_errors(lambda: verify_quote(quote, collateral, ROOT, at=AT))


@FUZZ
@given(data=fuzz_input(COLLATERAL_JSON))
def test_collateral_json_and_files(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    only_project_errors(lambda: collateral_from_json(data))
    path = tmp_path_factory.mktemp("collateral") / "collateral.json"
    path.write_bytes(data)
    only_project_errors(lambda: load_collateral(path))


def _collateral_field(name: str) -> bytes:
    value = json.loads(COLLATERAL_JSON)[name]
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


@FUZZ
@given(
    field=st.sampled_from(sorted(json.loads(COLLATERAL_JSON))),
    value=st.data(),
)
def test_each_collateral_field_damaged(field: str, value: st.DataObject) -> None:
    doc = json.loads(COLLATERAL_JSON)
    damaged = value.draw(text_of(mutated(_collateral_field(field))))
    doc[field] = damaged
    only_project_errors(lambda: verify_quote(QUOTE, collateral_from_json(doc), ROOT, at=AT))


@FUZZ
@given(tcb=fuzz_input(json.loads(COLLATERAL_JSON)["tcb_info"].encode()),
       qe=fuzz_input(json.loads(COLLATERAL_JSON)["qe_identity"].encode()),
       crl=fuzz_input(bytes.fromhex(json.loads(COLLATERAL_JSON)["pck_crl"])))  # fmt: skip
def test_tcb_info_qe_identity_and_crls(tcb: bytes, qe: bytes, crl: bytes) -> None:
    only_project_errors(lambda: parse_tcb_info(tcb))
    only_project_errors(lambda: parse_qe_identity(qe))
    only_project_errors(lambda: crl_to_der(crl))


# -- IMA lists, signatures, persisted IMA state ----------------------------------------------------
IMA_ASCII = (DATA / "ima" / "ibmtss" / "imatest.log").read_bytes()[:6000]
IMA_BINARY = (DATA / "ima" / "tpm2-tss" / "decoded" / "sml-ima-sig-sha256.bin").read_bytes()[:6000]


@FUZZ
@given(data=mutated(IMA_ASCII) | mutated(IMA_BINARY) | st.binary(max_size=300))
def test_ima_lists(data: bytes) -> None:
    only_project_errors(lambda: appraise_measurement_list(data, source="fuzz.log"))


@FUZZ
@given(sig=st.binary(max_size=80) | mutated(bytes.fromhex("030204") + bytes(4) + b"\x00\x10" + bytes(16)))
def test_ima_signatures(sig: bytes) -> None:
    only_project_errors(lambda: parse_signature(sig))
    only_project_errors(lambda: parse_module_signature(sig))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=24,
)


def _real_ima_state() -> dict[str, Any]:
    result = appraise_measurement_list(IMA_ASCII[: IMA_ASCII.rindex(b"\n") + 1])
    return dict(result.state.to_json())


REAL_STATE = _real_ima_state()


@st.composite
def damaged_state(draw: st.DrawFn) -> Any:
    doc = json.loads(json.dumps(REAL_STATE))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(doc)))
        doc[key] = draw(json_values)
    return doc


@FUZZ
@given(doc=damaged_state() | json_values)
def test_persisted_ima_state(doc: Any) -> None:
    only_project_errors(lambda: ImaState.from_json(doc))
    only_project_errors(lambda: appraise_measurement_list(IMA_ASCII, state=ImaState.from_json(doc)))


@FUZZ
@given(doc=json_values)
def test_persisted_claims_and_host_policy_state(doc: Any) -> None:
    only_project_errors(lambda: claimset_from_json(doc))
    only_project_errors(lambda: HostMeasuredState.from_json(doc))


# -- policy files and reference lists --------------------------------------------------------------
POLICY = (Path(__file__).resolve().parents[2] / "configs" / "demo" / "demo.policy").read_bytes()


@FUZZ
@given(text=text_of(mutated(POLICY)) | st.text(max_size=120))
def test_policy_files(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("policy")
    only_project_errors(lambda: compile_policy_text(text, filename="fuzz.policy", base_dir=base, sources=FILES))


@FUZZ
@given(name=st.text(max_size=12), kind=st.sampled_from(["import", "include"]))
def test_policy_import_and_include_paths(name: str, kind: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("imports")
    escaped = json.dumps(name)  # any character, NUL and lone surrogates included, as a policy string
    text = f"import {escaped}\n" if kind == "import" else f"host h {{\n    allow include {escaped}\n}}\n"
    only_project_errors(lambda: compile_policy_text(text, filename="fuzz.policy", base_dir=base, sources=FILES))


SHA256SUM = (Path(__file__).resolve().parents[2] / "configs" / "demo" / "reference" / "host.sha256sum").read_bytes()
KEYLIME = (DATA / "ima" / "keylime" / "sign-runtime-policy" / "runtime-policy.json").read_bytes()
SIGNED = (DATA / "ima" / "keylime" / "runtime-policy-test-signed.json").read_bytes()
PUBKEY = (DATA / "ima" / "keylime" / "runtime-policy-pubkey.pub").read_bytes()


@FUZZ
@given(text=text_of(mutated(SHA256SUM) | st.binary(max_size=200)))
def test_sha256sum_reference_lists(text: str) -> None:
    only_project_errors(lambda: parse_sha256sum(text, "fuzz.sha256sum"))


@FUZZ
@given(text=text_of(mutated(KEYLIME) | st.binary(max_size=200)))
def test_keylime_runtime_policies(text: str) -> None:
    only_project_errors(lambda: parse_keylime(text, "fuzz.json"))


@FUZZ
@given(envelope=text_of(mutated(SIGNED)), key=mutated(PUBKEY, max_edits=1))
def test_signed_keylime_envelopes(envelope: str, key: bytes) -> None:
    only_project_errors(lambda: verify_dsse_envelope(envelope, PUBKEY, "fuzz.json", "key.pub"))
    only_project_errors(lambda: verify_dsse_envelope(SIGNED.decode(), key, "fuzz.json", "key.pub"))


@FUZZ
@given(digest=st.text(max_size=70))
def test_non_ascii_base64_and_hex_in_reference_lists(digest: str) -> None:
    only_project_errors(lambda: parse_sha256sum(f"{digest}  /usr/bin/x\n", "fuzz.sha256sum"))
    doc = {"meta": {"version": 1}, "digests": {"/usr/bin/x": [digest]}, "excludes": [], "keyrings": {}, "ima": {}}
    only_project_errors(lambda: parse_keylime(json.dumps(doc), "fuzz.json"))
    envelope = {"payload": digest, "payloadType": "application/vnd.keylime+json", "signatures": [{"sig": digest}]}
    only_project_errors(lambda: verify_dsse_envelope(json.dumps(envelope), PUBKEY, "fuzz.json", "key.pub"))


# -- keystores -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_keystore(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from tests.support.floodlight import STORE_PASSWORD, make_ca, write_keystore

    tmp = tmp_path_factory.mktemp("jks")
    keystore, _ = write_keystore(tmp, make_ca(tmp))
    assert STORE_PASSWORD
    return keystore.read_bytes()


@settings(max_examples=max(EXAMPLES // 2, 10), deadline=None, derandomize=bool(os.environ.get("CI")),
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(data=st.data())
def test_keystores(real_keystore: bytes, data: st.DataObject, tmp_path_factory: pytest.TempPathFactory) -> None:
    from floodlight_trust.floodlight.keystore import FloodlightKeystore
    from tests.support.floodlight import STORE_PASSWORD

    path = tmp_path_factory.mktemp("ks") / "store.jks"
    path.write_bytes(data.draw(mutated(real_keystore)))
    only_project_errors(lambda: FloodlightKeystore.load(path, STORE_PASSWORD))



def test_keystore_with_a_damaged_encrypted_key_is_a_parse_error(real_keystore: bytes, tmp_path: Path) -> None:
    """Found by test_keystores: a private key entry whose EncryptedPrivateKeyInfo carries a wrong tag
    for its encrypted data (OCTET STRING 0x04 -> 0x00) raised pyasn1's error through pyjks."""
    from floodlight_trust.errors import ParseError
    from floodlight_trust.floodlight.keystore import FloodlightKeystore
    from tests.support.floodlight import STORE_PASSWORD

    algorithm = bytes.fromhex("060a2b060104012a021101010500")  # Sun's JKS key protector OID, NULL
    at = real_keystore.index(algorithm) + len(algorithm)
    assert real_keystore[at] == 0x04
    path = tmp_path / "store.jks"
    path.write_bytes(real_keystore[:at] + b"\x00" + real_keystore[at + 1 :])
    with pytest.raises(ParseError, match="damaged keystore"):
        FloodlightKeystore.load(path, STORE_PASSWORD)

# -- the protocol: JSON from peers and every message schema -----------------------------------------
@FUZZ
@given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()), name=st.sampled_from(SCHEMA_NAMES))
def test_peer_json_and_message_schemas(body: bytes, name: str) -> None:
    only_project_errors(lambda: validate(name, parse_json(body)))


def test_the_seeds_are_real_and_valid() -> None:
    """The mutations start from evidence that parses: the fuzzing is near the valid input."""
    assert ias.parse_report(IAS_BODY).status == "OK"
    assert parse_quote(QUOTE) is not None
    assert appraise_measurement_list(IMA_ASCII[: IMA_ASCII.rindex(b"\n") + 1]).entry_count > 0
    assert parse_sha256sum(SHA256SUM.decode(), "x").digests
    assert parse_keylime(KEYLIME.decode(), "x").digests
    assert base64.b64decode(json.loads(SIGNED)["payload"])


# -- the whole path, over HTTPS: mutated real evidence pushed to a running VM -----------------------
@st.composite
def damaged_evidence(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(out)))
        # Byte-level mutation only while the field still holds the genuine base64 (an earlier step
        # may have replaced it with an arbitrary JSON value, which is the test's input, not base64).
        if key in ("quote", "ima_list", "public_key") and out[key] == doc.get(key) and isinstance(out[key], str) and draw(st.booleans()):
            raw = base64.b64decode(out[key])
            out[key] = base64.b64encode(draw(mutated(raw, max_edits=2))).decode()
        elif key == "collateral" and isinstance(out[key], dict) and out[key]:
            field = draw(st.sampled_from(sorted(out[key])))
            out[key][field] = draw(text_of(mutated(str(out[key][field]).encode(), max_edits=2)))
        else:
            out[key] = draw(json_values)
    return out


@pytest.mark.parametrize("kind", ["host", "enclave"])
def test_mutated_evidence_pushed_over_https_is_never_a_500(deployment: Any, kind: str) -> None:
    import requests

    host = deployment.start_host()
    host.add_vnf("vnf-fw-fuzz")
    if kind == "host":
        genuine = host.agent.host_evidence(deployment.anonymous.nonce("host", host.name))
        path = "/v1/attest/host"
    else:
        assert deployment.admin.attest(host.name)["trusted"]
        genuine = host.agent.enclave_evidence("vnf-fw-fuzz", deployment.anonymous.nonce("enclave", host.name, "vnf-fw-fuzz"))
        path = "/v1/enroll"
    session = requests.Session()

    @settings(max_examples=max(EXAMPLES // 3, 10), deadline=None, derandomize=bool(os.environ.get("CI")),
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(doc=damaged_evidence(genuine))
    def push(doc: dict[str, Any]) -> None:
        r = session.post(
            deployment.service.api_url + path,
            data=json.dumps(doc),
            headers={"Content-Type": "application/json"},
            verify=str(deployment.service.tls_certificate),
            timeout=30,
        )
        assert r.status_code < 500, (r.status_code, r.text[:300])
        assert len(r.content) < 64 * 1024

    push()
