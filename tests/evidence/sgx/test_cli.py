"""`ftrust sgx` and `ftrust ias` through real subprocesses: exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding

from floodlight_trust.evidence.collateral import collateral_to_json
from tests.support.cli import ftrust


def test_sgx_show_json(testdata: Path) -> None:
    r = ftrust("sgx", "show", testdata / "sgx-dcap/occlum/occlum_quote.dat", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["type"] == "DCAP" and d["report"]["debug"] is True
    assert d["report"]["mrenclave"] == "8f173e4613ff05c52aaf04162d234edae8c9977eae47eb2299ae16a553011c68"
    assert d["pck_certificate"]["fmspc"] == "00606a000000"


def test_sgx_show_epid_base64(testdata: Path) -> None:
    r = ftrust("sgx", "show", testdata / "sgx-epid/mobilecoin/core_to_ias.txt")
    assert r.returncode == 0, r.stderr
    assert "EPID" in r.stdout and "report.debug" in r.stdout


def test_sgx_show_truncated_is_one_line(tmp_path: Path, testdata: Path) -> None:
    f = tmp_path / "q.bin"
    f.write_bytes((testdata / "sgx-dcap/phala/sgx_quote").read_bytes()[:500])
    r = ftrust("sgx", "show", f)
    assert r.returncode == 2
    assert (
        r.stderr.strip()
        == f"ftrust: error: {f}:offset 432: signature data length 4164 does not match the 64 bytes that follow"
    )
    assert "Traceback" not in r.stderr


def test_sgx_verify_phala(testdata: Path) -> None:
    d = testdata / "sgx-dcap/phala"
    r = ftrust(
        "sgx",
        "verify",
        d / "sgx_quote",
        "--collateral",
        d / "sgx_quote_collateral.json",
        "--at",
        "2025-06-20T00:00:00Z",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["claims"]["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    assert out["claims"]["advisory_ids"] == ["INTEL-SA-00289", "INTEL-SA-00615"]


def test_sgx_verify_expired_exit_1(testdata: Path) -> None:
    d = testdata / "sgx-dcap/phala"
    r = ftrust(
        "sgx",
        "verify",
        d / "sgx_quote",
        "--collateral",
        d / "sgx_quote_collateral.json",
        "--at",
        "2025-09-01T00:00:00Z",
    )
    assert r.returncode == 1
    assert r.stderr.startswith("ftrust: error: ") and "expired" in r.stderr and "Traceback" not in r.stderr


def test_sgx_verify_mobilecoin_dir(testdata: Path) -> None:
    d = testdata / "sgx-dcap/mobilecoin-attestation"
    args = ("sgx", "verify", d / "hw_quote.dat", "--collateral", d, "--at", "2023-07-12T20:48:25Z")
    r = ftrust(*args)
    assert r.returncode == 1 and "PCK CRL (Intel SGX PCK Processor CA) expired" in r.stderr
    r = ftrust(*args, "--unsafe-allow-expired-crls")
    assert r.returncode == 0, r.stderr
    assert "SWHardeningNeeded [INTEL-SA-00334, INTEL-SA-00615]" in r.stdout and "warning: PCK CRL" in r.stdout


def test_sgx_verify_bad_time_and_missing_file(testdata: Path) -> None:
    d = testdata / "sgx-dcap/phala"
    r = ftrust("sgx", "verify", d / "sgx_quote", "--collateral", d / "sgx_quote_collateral.json", "--at", "yesterday")
    assert r.returncode == 2 and "--at 'yesterday' is not an ISO 8601 timestamp" in r.stderr
    r = ftrust("sgx", "verify", d / "nope", "--collateral", d / "sgx_quote_collateral.json")
    assert r.returncode == 2 and r.stderr.startswith(f"ftrust: error: {d / 'nope'}: quote file not found")


def test_sgx_verify_simulated(tmp_path: Path) -> None:
    from floodlight_trust.clock import parse_time
    from floodlight_trust.sgxsim import SimulatedPlatform

    p = SimulatedPlatform.create(tmp_path / "sim")
    at = parse_time("2026-01-01T00:00:00Z")
    (tmp_path / "q").write_bytes(p.quote(mrenclave=bytes(32), mrsigner=bytes(32), report_data=b""))
    (tmp_path / "c.json").write_text(json.dumps(collateral_to_json(p.collateral(at))))
    (tmp_path / "root.pem").write_bytes(p.root_cert.public_bytes(Encoding.PEM))
    base = ("sgx", "verify", tmp_path / "q", "--collateral", tmp_path / "c.json", "--at", "2026-01-01T00:00:00Z")
    r = ftrust(*base)
    assert r.returncode == 1 and "issued by Intel SGX Root CA" in r.stderr
    r = ftrust(*base, "--unsafe-simulated-root", tmp_path / "root.pem", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["claims"]["simulated"] is True
    assert "SIMULATED" in r.stderr


def test_ias_verify_report_dir_and_files(testdata: Path) -> None:
    d = testdata / "ias/sn_sw_config_needed"
    r = ftrust("ias", "verify-report", d, "--at", "2021-01-01T00:00:00Z")
    assert r.returncode == 0, r.stderr
    assert "CONFIGURATION_AND_SW_HARDENING_NEEDED -> ConfigurationAndSWHardeningNeeded" in r.stdout
    r = ftrust(
        "ias",
        "verify-report",
        "--report",
        d / "report.json",
        "--signature",
        d / "x-iasreport-signature.b64",
        "--cert",
        d / "x-iasreport-signing-certificate.pem",
        "--nonce",
        "x",
        "--at",
        "2021-01-01T00:00:00Z",
    )
    assert r.returncode == 1 and "nonce" in r.stderr


def test_ias_corrupted_cert_one_line(testdata: Path) -> None:
    d = testdata / "ias/sn_ok_production"
    r = ftrust(
        "ias",
        "verify-report",
        "--report",
        d / "report.json",
        "--signature",
        d / "x-iasreport-signature.b64",
        "--cert",
        testdata / "ias/ra_cert_corrupted.der",
    )
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "ra_cert_corrupted.der: IAS report signing certificate is not a valid certificate" in r.stderr


def test_ias_usage_error(tmp_path: Path) -> None:
    r = ftrust("ias", "verify-report")
    assert r.returncode == 2 and "give DIR, or all of --report, --signature and --cert" in r.stderr


def test_sgx_verify_failures_name_the_file_at_fault(testdata: Path, tmp_path: Path) -> None:
    d = testdata / "sgx-dcap/phala"
    tampered = tmp_path / "tampered.quote"
    raw = bytearray((d / "sgx_quote").read_bytes())
    raw[100] ^= 1  # a byte of the signed report body
    tampered.write_bytes(bytes(raw))
    at = ("--at", "2025-06-20T00:00:00Z")
    r = ftrust("sgx", "verify", tampered, "--collateral", d / "sgx_quote_collateral.json", *at)
    assert r.returncode == 1
    assert r.stderr == f"ftrust: error: {tampered}: quote signature is not valid for the attestation key\n"
    bad_crl = tmp_path / "collateral.json"
    collateral = json.loads((d / "sgx_quote_collateral.json").read_text())
    collateral["pck_crl"] = "00ff"
    bad_crl.write_text(json.dumps(collateral))
    r = ftrust("sgx", "verify", d / "sgx_quote", "--collateral", bad_crl, *at)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith(f"ftrust: error: {bad_crl}: PCK CRL (Intel SGX PCK Processor CA) is not a valid DER CRL")


def test_sgx_fetch_collateral_bad_output_or_url_before_any_request(testdata: Path, tmp_path: Path) -> None:
    quote = testdata / "sgx-dcap/phala/sgx_quote"
    r = ftrust(
        "sgx", "fetch-collateral", quote, "--out", tmp_path / "no/such/dir/c.json", "--pcs", "http://127.0.0.1:9"
    )
    assert r.returncode == 2
    assert r.stderr == f"ftrust: error: {tmp_path / 'no/such/dir'}: output directory does not exist\n"
    r = ftrust("sgx", "fetch-collateral", quote, "--out", tmp_path / "c.json", "--pcs", "pccs.local:8081")
    assert r.returncode == 2 and r.stderr.startswith(
        "ftrust: error: PCS/PCCS URL 'pccs.local:8081' is not an http(s) URL"
    )
    assert list(tmp_path.iterdir()) == []


def test_ias_failures_name_the_file_at_fault(testdata: Path, tmp_path: Path) -> None:
    d = testdata / "ias/sn_ok_production"
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"garbage\n")
    files = {"--report": d / "report.json", "--signature": d / "x-iasreport-signature.b64",
             "--cert": d / "x-iasreport-signing-certificate.pem"}  # fmt: skip

    def verify(**swap: Path) -> subprocess.CompletedProcess[str]:
        argv = [x for k, v in files.items() for x in (k, swap.get(k[2:], v))]
        return ftrust("ias", "verify-report", *argv, "--at", "2021-01-01T00:00:00Z")

    r = verify(signature=garbage)
    assert r.returncode == 2 and r.stderr == f"ftrust: error: {garbage}: X-IASReport-Signature is not base64\n"
    r = verify(report=garbage)
    assert r.returncode == 1
    assert (
        r.stderr == f"ftrust: error: {garbage}: X-IASReport-Signature is not a valid signature over the report body\n"
    )
