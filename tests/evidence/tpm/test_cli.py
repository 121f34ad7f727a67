"""`ftrust tpm show|verify|ek-check`: inputs in the forms real tools write, exit codes 0/1/2, every
reason printed, one-line located errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from floodlight_trust.agent import swtpm
from floodlight_trust.agent.tpm import Tpm2ToolsTpm
from floodlight_trust.cli import main
from floodlight_trust.evidence.tpm.keys import load_key
from tests.support.cli import ftrust
from tests.support.tpm import SimulatedKernel


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main(["tpm", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def gce(testdata: Path) -> Path:
    return testdata / "tpm/go-tpm-tools/gce-cos-85-nonce9009"


def test_show_prints_every_field_and_json(capsys: pytest.CaptureFixture[str], gce: Path, testdata: Path) -> None:
    expected = json.loads((testdata / "tpm/expected.json").read_text())["go-tpm-tools/gce-cos-85-nonce9009"][
        "quote_sha384"
    ]
    code, out, _ = run(capsys, "show", gce / "quote_sha384.msg")
    assert code == 0
    for text in ("ff544347", "TPM_ST_ATTEST_QUOTE", "extraData        9009", "resetCount       10", "restartCount     0",
                 "firmwareVersion  2016051100162800", "sha384:0,1,2", "6c250f48d304517716f4a5a9127bf8762a80b63df783cb724630b180a3a66bea"):  # fmt: skip
        assert text in out
    code, out, _ = run(capsys, "show", gce / "quote_sha384.msg", "--json")
    doc = json.loads(out)
    assert doc["clock"] == expected["clock"] and doc["reset_count"] == expected["resetCount"]
    assert doc["qualified_signer"] == expected["qualifiedSigner"] and doc["pcr_digest"] == expected["pcrDigest"]
    assert doc["extra_data"] == "9009" and doc["pcr_selections"][0]["hash"] == "sha384"


def test_verify_valid_exit_0(capsys: pytest.CaptureFixture[str], gce: Path) -> None:
    code, out, err = run(capsys, "verify", gce / "quote_sha256.msg", "--signature", gce / "quote_sha256.sig",
                         "--ak", gce / "ak.tpmt_public", "--pcrs", gce / "pcrs_sha256.json", "--nonce", "9009")  # fmt: skip
    assert (code, err) == (0, "")
    assert "quote valid" in out


def test_verify_failed_exit_1_with_every_reason(capsys: pytest.CaptureFixture[str], gce: Path, testdata: Path) -> None:
    tampered = testdata / "tpm/tampered/gce_cos85_nonce9009_sha256/extradata_flip.attest"
    code, out, _ = run(capsys, "verify", tampered, "--signature", gce / "quote_sha256.sig", "--ak", gce / "ak.tpmt_public",
                       "--pcrs", gce / "pcrs_sha256.json", "--nonce", "9009", "--json")  # fmt: skip
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    assert {f["code"] for f in doc["findings"]} == {"host.tpm.signature", "host.tpm.nonce"}


def test_verify_accepts_keylime_tools_files_and_pem_keys(capsys: pytest.CaptureFixture[str], testdata: Path) -> None:
    k = testdata / "tpm/keylime/test-data-files"
    for ak in ("ak.pub", "akpub.pem"):
        code, out, _ = run(capsys, "verify", k / "quote.out", "--signature", k / "quotesig.out", "--ak", k / ak,
                           "--pcrs", k / "quotepcr.out", "--nonce", "db1db298db6d60e6385b7231743e9c3056a18003")  # fmt: skip
        assert code == 0, out
    # an empty nonce is a quote with no qualifying data: this one has some, so it fails
    code, out, _ = run(capsys, "verify", k / "quote.out", "--signature", k / "quotesig.out", "--ak", k / "ak.pub",
                       "--pcrs", k / "quotepcr.out", "--nonce", "")  # fmt: skip
    assert code == 1 and "host.tpm.nonce" in out


@pytest.mark.parametrize(
    ("swap", "message"),
    [
        ("quote", "offset 83: TPMS_ATTEST: pcrDigest needs 32 bytes, only 31 left"),
        ("signature", "TPMT_SIGNATURE"),
        ("nonce", "--nonce 'zz' is not hex"),
        ("pcrs", "PCR values: not JSON"),
    ],
)
def test_malformed_input_exit_2_one_located_line(
    capsys: pytest.CaptureFixture[str], gce: Path, testdata: Path, tmp_path: Path, swap: str, message: str
) -> None:
    args = {
        "quote": gce / "quote_sha256.msg",
        "signature": gce / "quote_sha256.sig",
        "pcrs": gce / "pcrs_sha256.json",
        "nonce": "9009",
    }
    bad = {
        "quote": testdata / "tpm/tampered/gce_cos85_nonce9009_sha256/truncated.attest",
        "signature": gce / "quote_sha256.msg",
        "nonce": "zz",
        "pcrs": tmp_path / "pcrs.json",
    }
    (tmp_path / "pcrs.json").write_text("{not json")
    args[swap] = bad[swap]
    code, out, err = run(capsys, "verify", args["quote"], "--signature", args["signature"], "--ak", gce / "ak.tpmt_public",
                         "--pcrs", args["pcrs"], "--nonce", args["nonce"])  # fmt: skip
    assert code == 2 and out == ""
    assert err.startswith("ftrust: error: ") and message in err
    assert "Traceback" not in err


def test_ek_check(capsys: pytest.CaptureFixture[str], testdata: Path, tmp_path: Path) -> None:
    stm = testdata / "tpm/ek-certs/stm"
    code, out, _ = run(capsys, "ek-check", stm / "stm_ecc_ek_cert.der", "--roots", stm, "--at", "2023-11-14T00:00:00Z")
    assert code == 0 and "GlobalSign Trusted Platform Module ECC Root CA" in out
    ecc_only = tmp_path / "roots"
    ecc_only.mkdir()
    for name in ("STM_ECC_01I.pem", "STM_ECC_01RT.pem", "GS_TPM_ECC_RT.pem"):
        (ecc_only / name).write_bytes((stm / name).read_bytes())
    code, out, _ = run(
        capsys, "ek-check", stm / "stm_rsa_ek_cert.der", "--roots", ecc_only, "--at", "2023-11-14T00:00:00Z", "--json"
    )
    assert code == 1 and json.loads(out)["reasons"][0].startswith("no chain")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "ek-check", stm / "stm_rsa_ek_cert.der", "--roots", empty)
    assert code == 2 and "no certificate in" in err


def test_verify_real_tpm2_quote_files_from_swtpm_with_the_ima_log(swtpm_state: Path, tmp_path: Path) -> None:
    """tpm2-tools writes the files (tpm2_quote -m -s -o, tpm2_createak -u), the CLI runs as a process."""
    with swtpm.Swtpm(swtpm_state) as sim:
        tpm = Tpm2ToolsTpm(sim.tcti)
        kernel = SimulatedKernel(tpm)
        kernel.boot()
        kernel.measure("/usr/bin/vnf-agent", b"agent")
        nonce = bytes(range(20))
        q = tpm.quote(nonce, {"sha256": (10,)})
        ak = tpm.attestation_key()
    (tmp_path / "q.msg").write_bytes(q.attest)
    (tmp_path / "q.sig").write_bytes(q.signature)
    (tmp_path / "q.pcrs").write_bytes(q.pcrs)
    (tmp_path / "ak.pub").write_bytes(len(ak).to_bytes(2, "big") + ak)  # TPM2B_PUBLIC, as tpm2_createak -u writes
    (tmp_path / "ak.pem").write_bytes(
        load_key(ak).public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "ima.log").write_bytes(kernel.ascii_list())
    forged = kernel.ascii_list().replace(b"/usr/bin/vnf-agent", b"/usr/bin/vnf-agenx")
    (tmp_path / "forged.log").write_bytes(forged)

    base = (
        "verify",
        tmp_path / "q.msg",
        "--signature",
        tmp_path / "q.sig",
        "--pcrs",
        tmp_path / "q.pcrs",
        "--nonce",
        nonce.hex(),
    )
    for ak_file in ("ak.pub", "ak.pem"):
        good = ftrust("tpm", *base, "--ak", tmp_path / ak_file, "--ima-log", tmp_path / "ima.log")
        assert good.returncode == 0, good.stdout + good.stderr
        assert "PCR 10 (sha256)" in good.stdout
    bad = ftrust("tpm", *base, "--ak", tmp_path / "ak.pub", "--ima-log", tmp_path / "forged.log")
    assert bad.returncode == 1
    assert "host.tpm.ima_pcr10" in bad.stdout and "template hash mismatch" in bad.stdout
