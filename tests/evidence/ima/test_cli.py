"""`ftrust ima show|replay|verify` through a real subprocess: output, exit codes, one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from floodlight_trust.evidence.ima import make_entry, serialize_ascii
from tests.support.cli import ftrust

SHA1_PCR10 = "9be6bac02bf18d09d17e726c2df00bca4e8831ea"
SHA256_PCR10 = "7fac48c81837d6d29046008aef0cdad8c2745cc98c3340cbba9bfdf39b4124b8"


def test_show_table_and_json(testdata: Path) -> None:
    log = testdata / "ima/ibmtss/imatest.log"
    r = ftrust("ima", "show", log)
    assert r.returncode == 0, r.stderr
    assert "/usr/lib/systemd/systemd" in r.stdout and "boot_aggregate (violation)" in r.stdout
    j = ftrust("ima", "show", log, "--json")
    doc = json.loads(j.stdout)
    assert len(doc["entries"]) == 17 and doc["ok"] is True
    assert [f["kind"] for f in doc["findings"]] == ["violation"]


def test_replay_with_expect(testdata: Path) -> None:
    log = testdata / "ima/ibmtss/sha1.log"
    r = ftrust("ima", "replay", log, "--bank", "sha256", "--expect", SHA256_PCR10)
    assert r.returncode == 0 and r.stdout.strip() == SHA256_PCR10
    bad = ftrust("ima", "replay", log, "--bank", "sha1", "--expect", "00" * 20)
    assert bad.returncode == 1
    assert bad.stderr.strip() == f"ftrust: error: {log}: PCR 10 sha1 replays to {SHA1_PCR10}, expected {'00' * 20}"


def test_verify_ok_and_pcr_expectation(testdata: Path) -> None:
    log = testdata / "ima/ibmtss/sha256.log"
    r = ftrust("ima", "verify", log, "--expect-pcr", f"sha1={SHA1_PCR10}", "--expect-pcr", f"sha256={SHA256_PCR10}")
    assert r.returncode == 0, r.stderr
    assert "362 entries, template hashes ok" in r.stdout


def test_verify_names_first_bad_entry_by_line(tmp_path: Path) -> None:
    es = [make_entry(f"/bin/t{i}", hashlib.sha256(b"%d" % i).digest()) for i in range(5)]
    log = tmp_path / "ascii_runtime_measurements"
    log.write_bytes(serialize_ascii(es).replace(b"/bin/t3", b"/bin/X3"))
    r = ftrust("ima", "verify", log)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ftrust: error: {log}:4:entry 3: template hash mismatch for '/bin/X3'")
    assert "Traceback" not in r.stderr


def test_user_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    log = tmp_path / "m.txt"
    log.write_text("10 abc ima-ng sha256:zz /x\n")
    r = ftrust("ima", "verify", log)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"ftrust: error: {log}:1:entry 0:")
    missing = ftrust("ima", "show", tmp_path / "nope")
    assert missing.returncode == 2 and "measurement list not found" in missing.stderr
    badarg = ftrust("ima", "verify", log, "--expect-pcr", "md5=00")
    assert badarg.returncode == 2 and "expected BANK=HEX" in badarg.stderr


def test_verify_text_prints_every_finding_that_json_reports(tmp_path: Path) -> None:
    """Plain text hides nothing: a template hash mismatch, a violation and a partial trailing
    record are each printed, as `--json` and `ima show` report them."""
    es = [make_entry(f"/bin/t{i}", hashlib.sha256(b"%d" % i).digest()) for i in range(4)]
    data = serialize_ascii(es).replace(b"/bin/t1", b"/bin/X1")
    log = tmp_path / "ascii_runtime_measurements"
    log.write_bytes(data + data.splitlines(keepends=True)[2][:40])  # cut short: no newline
    r = ftrust("ima", "verify", log)
    j = json.loads(ftrust("ima", "verify", log, "--json").stdout)
    kinds = [f["kind"] for f in j["findings"]]
    assert "partial-record" in kinds and "template-hash" in "".join(kinds), kinds
    assert r.returncode == 1
    for f in j["findings"]:
        assert f"{f['kind']}: " in r.stdout and f["message"] in r.stdout
