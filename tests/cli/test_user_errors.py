"""Every command turns a user's mistake into one located line on stderr, exit 2, no traceback.

The table below must name every leaf command of `ftrust`; a new command without a case fails
`test_every_command_has_a_case`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from floodlight_trust.cli import build_parser
from tests.support.cli import ftrust


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(prefix)
        return
    for action in subs:
        for name, sub in action.choices.items():
            yield from leaf_commands(sub, (*prefix, name))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {
        "config": ("ftrust.toml", '[state]\ndir = "state"\n[ca]\nkey_typ = "ec-p256"\n'),
        "policy": ("typo.policy", 'host h {\n    templat in {"ima-ng"}\n}\n'),
        "good_policy": ("good.policy", 'host h {\n    template in {"ima-ng"}\n}\n'),
        "claims": ("claims.json", '{"verified_at": "2025-01-01T00:00:00Z", "ima": {"entries": [{"path": 3}]}}'),
        "ima": ("ima.log", "10 5b615338d904500d05ee0b9dba42db2cce7f60f9 ima-ng sha256:zz boot_aggregate\n"),
        "quote": ("quote.bin", "\x03\x00\x02\x00"),
        "pem": ("cert.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"),
    }
    out = {}
    for key, (name, text) in files.items():
        (d / name).write_text(text)
        out[key] = d / name
    out["missing"] = d / "missing.bin"
    out["dir"] = d
    return out


def cases(i: dict[str, Path]) -> dict[str, list[str]]:
    cfg = ["--config", str(i["config"])]
    return {
        "policy check": ["policy", "check", str(i["policy"])],
        "policy fmt": ["policy", "fmt", str(i["policy"])],
        "policy test": ["policy", "test", str(i["missing"])],
        "policy eval": ["policy", "eval", str(i["good_policy"]), "--claims", str(i["claims"]), "--host", "h"],
        "policy generate": ["policy", "generate", "--ima-log", str(i["ima"])],
        "ima show": ["ima", "show", str(i["ima"])],
        "ima replay": ["ima", "replay", str(i["ima"]), "--bank", "sha1"],
        "ima verify": ["ima", "verify", str(i["ima"])],
        "sgx show": ["sgx", "show", str(i["quote"])],
        "sgx verify": ["sgx", "verify", str(i["quote"]), "--collateral", str(i["missing"])],
        "sgx fetch-collateral": ["sgx", "fetch-collateral", str(i["quote"]), "--out", str(i["dir"] / "c.json")],
        "ias verify-report": ["ias", "verify-report", str(i["missing"])],
        "tpm show": ["tpm", "show", str(i["quote"])],
        "tpm verify": [
            *("tpm", "verify", str(i["quote"]), "--signature", str(i["quote"]), "--ak", str(i["pem"])),
            *("--pcrs", str(i["claims"]), "--nonce", ""),
        ],
        "tpm ek-check": ["tpm", "ek-check", str(i["pem"]), "--roots", str(i["dir"])],
        "ca init": [*cfg, "ca", "init"],
        "ca issue": [*cfg, "ca", "issue", "--subject", "CN=x"],
        "ca revoke": [*cfg, "ca", "revoke", "01", "--reason", "keyCompromise"],
        "ca crl": [*cfg, "ca", "crl"],
        "ca list": [*cfg, "ca", "list"],
        "floodlight provision": [*cfg, "floodlight", "provision"],
        "floodlight status": [*cfg, "floodlight", "status"],
        "floodlight check": [
            "floodlight",
            "check",
            "https://127.0.0.1:9",
            "--cert",
            str(i["pem"]),
            "--key",
            str(i["pem"]),
        ],
        "floodlight keystore list": [*cfg, "floodlight", "keystore", "list"],
        "floodlight keystore add-ca": [*cfg, "floodlight", "keystore", "add-ca", "ca", str(i["pem"])],
        "floodlight keystore rotate-ca": [*cfg, "floodlight", "keystore", "rotate-ca", "ca", str(i["pem"])],
        "floodlight keystore remove": [*cfg, "floodlight", "keystore", "remove", "ca"],
        "floodlight keystore change-password": [*cfg, "floodlight", "keystore", "change-password"],
        "vm serve": [*cfg, "vm", "serve"],
        "vm admin-cert": [*cfg, "vm", "admin-cert", "admin"],
        "vm migrate": [*cfg, "vm", "migrate"],
        "vm hosts list": [*cfg, "vm", "hosts", "list"],
        "vm hosts add": [*cfg, "vm", "hosts", "add", "h1", "--agent", "http://127.0.0.1:9"],
        "vm hosts tpm-register": [*cfg, "vm", "hosts", "tpm-register", "h1"],
        "vm hosts remove": [*cfg, "vm", "hosts", "remove", "h1", "--reason", "test"],
        "vm hosts repin": [*cfg, "vm", "hosts", "repin", "h1", "--reason", "test"],
        "vm vnfs list": [*cfg, "vm", "vnfs", "list"],
        "vm vnfs add": [*cfg, "vm", "vnfs", "add", "h1", "vnf-a"],
        "vm vnfs release": [*cfg, "vm", "vnfs", "release", "h1", "vnf-a", "--reason", "test"],
        "vm vnfs remove": [*cfg, "vm", "vnfs", "remove", "h1", "vnf-a", "--reason", "test"],
        "vm enrollments list": [*cfg, "vm", "enrollments", "list"],
        "vm attest": [*cfg, "vm", "attest", "h1"],
        "vm enroll": [*cfg, "vm", "enroll", "h1", "vnf-a"],
        "vm revoke": [*cfg, "vm", "revoke", "vnf-a", "--reason", "test"],
        "vm reattest": [*cfg, "vm", "reattest", "h1"],
        "vm reload-policy": [*cfg, "vm", "reload-policy", "--dry-run"],
        "vm audit": [*cfg, "vm", "audit"],
        "agent serve": [*cfg, "agent", "serve"],
        "agent enroll": [*cfg, "agent", "enroll", "vnf-a"],
        "enclave serve": [*cfg, "enclave", "serve"],
        "enclave info": [*cfg, "enclave", "info"],
        "enclave call": [*cfg, "enclave", "call", "/wm/core/health/json"],
        "enclave measure": ["enclave", "measure", str(i["missing"])],
        "enclave check-manifest": ["enclave", "check-manifest", str(i["missing"])],
        "enclave manifest-vars": ["enclave", "manifest-vars", "--python", str(i["missing"])],
        "demo": ["demo", "--floodlight-properties", str(i["missing"])],
        "floodlight export-cert": [*cfg, "floodlight", "export-cert"],
        "floodlight controller-cert": [*cfg, "floodlight", "controller-cert", "floodlight-1"],
        "completion": ["completion", "bash", "--out", str(i["missing"] / "ftrust")],
    }


def test_every_command_has_a_case(inputs: dict[str, Path]) -> None:
    assert sorted(leaf_commands(build_parser())) == sorted(cases(inputs))


COMMANDS = sorted(
    cases(
        {k: Path("x") for k in ("config", "policy", "good_policy", "claims", "ima", "quote", "pem", "missing", "dir")}
    )
)


@pytest.mark.parametrize("command", COMMANDS)
def test_user_error_is_one_located_line(command: str, inputs: dict[str, Path]) -> None:
    argv = cases(inputs)[command]
    r = ftrust(*argv, timeout=60)
    assert "Traceback" not in r.stderr
    assert r.returncode == 2, f"exit {r.returncode}: {r.stderr}"
    lines = r.stderr.splitlines()
    if command == "policy check":
        # The checker reports like a compiler: every error as FILE:LINE:COL, the source line and a caret.
        assert lines[0].startswith(f"{inputs['policy']}:2:13: "), r.stderr
        assert lines[2].strip() == "^"
        return
    assert lines and lines[0].startswith("ftrust: error: "), r.stderr
    # the message is located: it names the offending file (with line/offset where there is one)
    assert str(inputs["dir"]) in lines[0], lines[0]
    # one line, plus at most a hint line
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("  hint: ")), r.stderr
