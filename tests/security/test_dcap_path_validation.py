"""Issue 15 (DCAP verified like for like with dcap-qvl), attacked for real over HTTPS.

What once worked: the DCAP verifier took as the PCK CA any certificate of the collateral's PCK CRL
issuer chain that the root had issued, CA or not, and never looked the TCB signing certificate up
in the root CA CRL. So whoever held the TCB signing key (an end-entity certificate of the root,
which signs TCB info and QE identities, never certificates) could mint a PCK certificate for a
machine that does not exist and make the VM trust it; and collateral signed by a TCB signing key
the root had revoked still verified. dcap-qvl's path validation (webpki) refuses both, and now
the VM does too: each host below sends its evidence (quote and collateral) from its own agent, the
VM judges it over HTTPS, and the host is refused with the reason named.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from floodlight_trust.evidence.collateral import Collateral
from floodlight_trust.evidence.sgx_quote import SGX_EXTENSIONS_OID
from floodlight_trust.sgxsim import SimulatedPlatform
from floodlight_trust.sgxsim.certificates import certificate, crl
from tests.support.attacks import count
from tests.support.world import World

TRUSTED_HOST = "SELECT COUNT(*) FROM manager_hosts WHERE name = ? AND status = 'trusted'"


def _quote_reason(verdict: dict[str, object]) -> str:
    reasons = verdict["reasons"]
    assert isinstance(reasons, list)
    [why] = [r for r in reasons if r["rule"] == "sgx.quote"]
    return str(why["message"])


def test_a_genuine_host_is_trusted(world: World) -> None:
    """The control: a host of the same simulated authority, with its own real PCK chain."""
    host = world.start_host()
    verdict = world.admin.attest(host.name)
    assert verdict["trusted"], verdict["reasons"]


def test_a_pck_certificate_minted_with_the_tcb_signing_key_is_refused(world: World) -> None:
    authority = world.platforms[0]
    machine = SimulatedPlatform.create(world.tmp / "minted-platform", authority=authority)
    sgx = machine.pck_cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSIONS_OID)).value
    pck_key = ec.generate_private_key(ec.SECP256R1())
    # The attacker's machine: a PCK certificate and a PCK CRL signed with the TCB signing key, and
    # that certificate (issued by the root, valid, not revoked) sent as the PCK CRL's issuer.
    minted = certificate(
        machine.pck_cert.subject,
        pck_key,
        authority.tcb_key,
        authority.tcb_cert,
        ca=False,
        sgx=sgx.value,  # type: ignore[attr-defined]
    )
    forged = dataclasses.replace(
        machine, pck_ca_key=authority.tcb_key, pck_ca_cert=authority.tcb_cert, pck_key=pck_key, pck_cert=minted
    )
    host = world.start_host(machine=forged)
    verdict = world.admin.attest(host.name)
    assert not verdict["trusted"]
    message = _quote_reason(verdict)
    assert "PCK CA certificate" in message and "is not a CA (basicConstraints cA is not TRUE)" in message
    assert count(world, TRUSTED_HOST, host.name) == 0


@dataclasses.dataclass(frozen=True, eq=False)
class _RevokedTcbSigner(SimulatedPlatform):
    """A machine whose collateral carries the root's current CRL, which revokes the TCB signing
    certificate that signed its TCB info and QE identity (as Intel would after that key leaked)."""

    def collateral(self, at: datetime, **kw: object) -> Collateral:
        c = super().collateral(at, **kw)  # type: ignore[arg-type]
        current = x509.load_der_x509_crl(c.root_ca_crl)
        revoking = crl(
            self.root_key,
            self.root_cert,
            current.last_update_utc,
            current.next_update_utc,  # type: ignore[arg-type]
            [self.tcb_cert.serial_number],
        )
        return dataclasses.replace(c, root_ca_crl=revoking)


def test_collateral_signed_by_a_revoked_tcb_signing_key_is_refused(world: World) -> None:
    machine = SimulatedPlatform.create(world.tmp / "revoked-signer-platform", authority=world.platforms[0])
    revoked = _RevokedTcbSigner(**{f.name: getattr(machine, f.name) for f in dataclasses.fields(machine)})
    host = world.start_host(machine=revoked)
    verdict = world.admin.attest(host.name)
    assert not verdict["trusted"]
    message = _quote_reason(verdict)
    assert "TCB info signing certificate" in message and "is revoked by the root CA CRL" in message
    assert count(world, TRUSTED_HOST, host.name) == 0
