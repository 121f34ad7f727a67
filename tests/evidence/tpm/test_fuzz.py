"""Property tests of the TPM parsers: arbitrary and mutated bytes raise only the project's ParseError
(located by offset), and structures round-trip. Bounded examples, so the suite stays fast."""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from floodlight_trust.errors import ParseError
from floodlight_trust.evidence.tpm.credential import parse_tools_credential
from floodlight_trust.evidence.tpm.ek import read_certificate
from floodlight_trust.evidence.tpm.keys import load_key
from floodlight_trust.evidence.tpm.structures import (
    TPM_GENERATED_VALUE,
    parse_attest,
    parse_pcr_file,
    parse_public,
    parse_signature,
    pcrs_from_json,
    pcrs_to_json,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "tpm"
REAL = [
    (parse_attest, DATA / "go-tpm-tools/gce-cos-85-nonce9009/quote_sha256.msg"),
    (parse_attest, DATA / "trustee-tpm-swtpm/quote.msg"),
    (parse_signature, DATA / "go-tpm-tools/gce-cos-85-nonce9009/quote_sha256.sig"),
    (parse_public, DATA / "go-tpm-tools/gce-cos-85-nonce9009/ak.tpmt_public"),
    (parse_public, DATA / "keylime/tpm_util_test-makecredential/ecc_ek.tpm2b_public"),
    (parse_pcr_file, DATA / "keylime/test-data-files/quotepcr.out"),
    (parse_tools_credential, DATA / "keylime/test-data-files/mkcred.out"),
    (load_key, DATA / "keylime/test-data-files/ak.pub"),
    (read_certificate, DATA / "ek-certs/stm/stm_ecc_ek_cert.der"),
]
PARSERS = [
    parse_attest,
    parse_signature,
    parse_public,
    parse_pcr_file,
    parse_tools_credential,
    load_key,
    read_certificate,
]


def _only_parse_errors(parser: object, data: bytes) -> None:
    try:
        parser(data)  # type: ignore[operator]
    except ParseError as e:
        assert e.location is None or e.location.offset is None or 0 <= e.location.offset <= len(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PARSERS), st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_parse_errors(parser: object, data: bytes) -> None:
    _only_parse_errors(parser, data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(REAL), st.data())
def test_mutated_real_structures_raise_only_parse_errors(case: tuple[object, Path], data: st.DataObject) -> None:
    parser, path = case
    blob = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, max(0, len(blob) - 1)))
        if op == "flip" and blob:
            blob[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del blob[i:]
        else:
            blob[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    _only_parse_errors(parser, bytes(blob))


def _tpm2b(b: bytes) -> bytes:
    return struct.pack(">H", len(b)) + b


@settings(max_examples=200, deadline=None)
@given(
    signer=st.binary(max_size=34),
    extra=st.binary(max_size=64),
    clock=st.integers(0, 2**64 - 1),
    resets=st.integers(0, 2**32 - 1),
    restarts=st.integers(0, 2**32 - 1),
    safe=st.booleans(),
    firmware=st.integers(0, 2**64 - 1),
    banks=st.lists(
        st.tuples(st.sampled_from([0x0004, 0x000B, 0x000C]), st.binary(min_size=3, max_size=3)),
        max_size=3,
        unique_by=lambda t: t[0],
    ),
    digest=st.binary(max_size=64),
    prefixed=st.booleans(),
)
def test_attest_round_trip(signer: bytes, extra: bytes, clock: int, resets: int, restarts: int, safe: bool,
                           firmware: int, banks: list[tuple[int, bytes]], digest: bytes, prefixed: bool) -> None:  # fmt: skip
    body = struct.pack(">IH", TPM_GENERATED_VALUE, 0x8018) + _tpm2b(signer) + _tpm2b(extra)
    body += struct.pack(">QIIBQ", clock, resets, restarts, int(safe), firmware)
    body += struct.pack(">I", len(banks)) + b"".join(struct.pack(">HB", h, 3) + bm for h, bm in banks)
    body += _tpm2b(digest)
    a = parse_attest(_tpm2b(body) if prefixed else body)
    assert a.raw == body and a.magic_ok
    assert (a.qualified_signer, a.extra_data, a.quote.pcr_digest) == (signer, extra, digest)
    c = a.clock_info
    assert (c.clock, c.reset_count, c.restart_count, c.safe, a.firmware_version) == (
        clock,
        resets,
        restarts,
        safe,
        firmware,
    )
    assert [s.bitmap for s in a.quote.selections] == [bm for _, bm in banks]
    for s, (_, bm) in zip(a.quote.selections, banks, strict=True):
        assert all(bm[p // 8] >> (p % 8) & 1 for p in s.pcrs)
        assert len(s.pcrs) == sum(bin(x).count("1") for x in bm)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["sha1", "sha256", "sha384"]),
        st.dictionaries(st.integers(0, 23), st.integers(0, 2**16)),
        max_size=3,
    )
)
def test_pcr_json_round_trip(doc: dict[str, dict[int, int]]) -> None:
    sizes = {"sha1": 20, "sha256": 32, "sha384": 48}
    values = {bank: {p: v.to_bytes(sizes[bank], "big") for p, v in vals.items()} for bank, vals in doc.items()}
    assert pcrs_from_json(pcrs_to_json(values)) == {b: v for b, v in values.items() if v}
