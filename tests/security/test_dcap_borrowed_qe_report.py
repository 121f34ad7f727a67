"""Issue 15 (the QE report check remembered), attacked for real over HTTPS.

The VM remembers a QE report whose PCK signature it checked: a platform's QE report and its
signature are the same bytes in all its quotes. The attack: a machine that holds platform A's
certified attestation key (A's QE report, A's PCK signature over it, quotes signed by A's
attestation key) shows platform B's PCK chain, to be admitted under B's platform identity, after
the VM has checked and remembered A's QE report from A's own host. The memo is keyed by the PCK
key too, so the report is checked against B's key, and the host is refused with the reason named.
"""

from __future__ import annotations

from floodlight_trust.evidence import dcap
from floodlight_trust.sgxsim import SimulatedPlatform
from tests.security.test_dcap_path_validation import TRUSTED_HOST, _quote_reason
from tests.support.attacks import BorrowedQeReport, count
from tests.support.world import World


def test_a_remembered_qe_report_does_not_admit_another_platform_s_pck_chain(world: World) -> None:
    authority = world.platforms[0]
    donor = SimulatedPlatform.create(world.tmp / "qe-donor", authority=authority)
    genuine = world.start_host(machine=donor)
    assert world.admin.attest(genuine.name)["trusted"]
    report, signature = donor._qe_certification[2:]
    assert any(memo[1:] == (report, signature) for memo in dcap._qe_reports)  # the VM remembers it

    victim = SimulatedPlatform.create(world.tmp / "qe-victim", authority=authority)
    hostile = world.start_host(machine=BorrowedQeReport.of(victim, donor=donor))
    verdict = world.admin.attest(hostile.name)
    assert not verdict["trusted"]
    assert _quote_reason(verdict).endswith("QE report signature is not valid for the PCK certificate's key")
    assert count(world, TRUSTED_HOST, hostile.name) == 0
    assert world.admin.attest(genuine.name)["trusted"]  # the donor's own host is still trusted
