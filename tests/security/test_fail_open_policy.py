"""Issue 11, item 9 (fail-open host policy), attacked for real over HTTPS.

What once worked: a host policy that omitted the integrity-enclave identity check let a quote from
an arbitrary debug enclave make the host ``trusted`` with no reason at all, and `ftrust policy
check` said nothing. Now the VM refuses such a host (fail closed) and `policy check` reports the
policy as an error, unless the host policy opts out with ``UNSAFE_any_integrity_enclave = true``.
"""

from __future__ import annotations

import hashlib
import json

from floodlight_trust.enclave.platform import Evidence
from floodlight_trust.sgxsim import measure_enclave_image
from tests.support.attacks import count
from tests.support.cli import ftrust
from tests.support.world import World, policy_text

ROGUE_IMAGE = b"an arbitrary enclave the attacker built, in debug mode"
INTEGRITY_LINE = "    integrity_enclave = host_integrity\n"


def open_policy(unsafe: bool = False) -> str:
    """The test site policy with the host's integrity-enclave rule left out (the old mistake)."""
    text = policy_text()
    assert INTEGRITY_LINE in text
    return text.replace(INTEGRITY_LINE, "    UNSAFE_any_integrity_enclave = true\n" if unsafe else "")


def rogue_integrity_enclave(host: object) -> None:
    """The host's agent now answers with a debug enclave of the attacker's own instead of the
    integrity enclave (same machine, real quote, REPORTDATA over the nonce and the IMA list)."""
    backend = host.backend  # type: ignore[attr-defined]
    attestation = backend.attestation

    def host_evidence(report_data: bytes) -> Evidence:
        quote = attestation.platform.quote(
            mrenclave=measure_enclave_image(ROGUE_IMAGE),
            mrsigner=hashlib.sha256(b"attacker signer").digest(),
            report_data=report_data,
            isv_prod_id=0,
            isv_svn=1,
            debug=True,
        )
        return Evidence("DCAP", bytes(quote), attestation._collateral_json())

    backend.host_evidence = host_evidence


def test_policy_check_refuses_a_host_policy_without_an_integrity_enclave(world: World) -> None:
    path = world.tmp / "open.policy"
    path.write_text(open_policy())
    r = ftrust("policy", "check", str(path))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert (
        "host policy 'test_host' names no integrity enclave" in r.stderr and "UNSAFE_any_integrity_enclave" in r.stderr
    )
    r = ftrust("policy", "check", "--json", str(path))
    [doc] = json.loads(r.stdout)
    assert not doc["ok"] and doc["errors"][0]["code"] == "host.integrity_enclave"
    path.write_text(open_policy(unsafe=True))
    r = ftrust("policy", "check", str(path))
    assert r.returncode == 0, r.stderr


def test_a_rogue_debug_enclave_does_not_vouch_for_a_host_under_an_open_policy(world: World) -> None:
    host = world.start_host()
    rogue_integrity_enclave(host)
    # Under the site policy (integrity enclave named), the rogue quote is refused for its identity.
    verdict = world.admin.attest(host.name)
    assert not verdict["trusted"]
    assert any(r["rule"].startswith("integrity-enclave:") for r in verdict["reasons"])
    # The policy without the rule: refused all the same, with the reason saying why (fail closed).
    (world.tmp / "site.policy").write_text(open_policy())
    assert world.admin.reload_policy(dry_run=False)
    verdict = world.admin.attest(host.name)
    assert not verdict["trusted"]
    [why] = [r for r in verdict["reasons"] if r["rule"] == "host.integrity_enclave"]
    assert why["level"] == "deny" and "names no integrity enclave policy" in why["message"]
    assert count(world, "SELECT COUNT(*) FROM manager_hosts WHERE name = ? AND status = 'trusted'", host.name) == 0
    # Only the UNSAFE opt-out lets it through, and every verdict then says INSECURE.
    (world.tmp / "site.policy").write_text(open_policy(unsafe=True))
    assert world.admin.reload_policy(dry_run=False)
    verdict = world.admin.attest(host.name)
    assert verdict["trusted"], verdict["reasons"]
    [note] = [r for r in verdict["reasons"] if r["rule"] == "host.integrity_enclave"]
    assert note["level"] == "note" and note["message"].startswith("INSECURE")
    (world.tmp / "site.policy").write_text(policy_text())
    assert world.admin.reload_policy(dry_run=False)


def test_policy_check_flags_every_open_ended_rule(world: World) -> None:
    path = world.tmp / "loose.policy"
    path.write_text(
        policy_text()
        + """
enclave anyone {
    allow_simulated = true
}
enclave any_version {
    identity: mrsigner in vnf_signers
}
enroll loose for "loose-*" {
    host = test_host
    enclave = anyone
}
enroll old for "old-*" {
    host = test_host
    enclave = any_version
}
"""
    )
    r = ftrust("policy", "check", "--json", str(path))
    assert r.returncode == 0, r.stderr
    [doc] = json.loads(r.stdout)
    codes = sorted({(w["code"], w["message"].split("'")[1]) for w in doc["warnings"]})
    assert ("enclave.identity", "anyone") in codes
    assert ("enclave.tcb", "anyone") in codes and ("enclave.tcb", "firewall") in codes
    assert ("enclave.svn", "any_version") in codes and ("enclave.svn", "firewall") not in codes
    assert ("enclave.advisories", "anyone") in codes
    r = ftrust("policy", "check", str(path))
    assert "warning: enclave policy 'anyone' tests neither mrenclave nor mrsigner" in r.stderr
