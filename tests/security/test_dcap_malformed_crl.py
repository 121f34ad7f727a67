"""Issue 15, attacked for real over HTTPS: malformed CRLs that cryptography refuses with something
other than ValueError.

What once happened: a CRL listing an extension twice made cryptography raise DuplicateExtension,
and one of an unknown version InvalidVersion; neither is a ValueError, so they escaped the DCAP
verifier untyped (out of ``verify_quote``, past the quote check's handling of typed errors) and
the VM answered the admin's attestation with 500 "internal error" instead of failing the quote
with a parse error. Whoever sends collateral with a quote can send
either: the CRL is parsed before its signature is checked, so no key is needed. Now the host is
refused with the reason named, as for any malformed CRL.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from floodlight_trust.evidence.collateral import Collateral
from floodlight_trust.evidence.der import tlv as der_tlv
from floodlight_trust.sgxsim import SimulatedPlatform
from tests.security.test_dcap_path_validation import TRUSTED_HOST, _quote_reason
from tests.support.attacks import count
from tests.support.world import World


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    length = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82]) + n.to_bytes(2, "big")
    return bytes([tag]) + length + body


def _tbs_elements(crl_der: bytes) -> tuple[list[bytes], bytes]:
    """The tbsCertList's elements of a CRL, and what follows the tbsCertList (algorithm, signature)."""
    _, start, end = der_tlv(crl_der, 0)
    _, at, tbs_end = der_tlv(crl_der, start)
    elements = []
    while at < tbs_end:
        _, _, element_end = der_tlv(crl_der, at, tbs_end)
        elements.append(crl_der[at:element_end])
        at = element_end
    return elements, crl_der[tbs_end:end]


def _extension_listed_twice(crl_der: bytes) -> bytes:
    elements, rest = _tbs_elements(crl_der)
    _, list_start, list_end = der_tlv(elements[-1], der_tlv(elements[-1], 0)[1])  # [0] { SEQUENCE OF Extension }
    _, _, first_end = der_tlv(elements[-1], list_start, list_end)
    extensions = elements[-1][list_start:list_end] + elements[-1][list_start:first_end]
    tbs = b"".join(elements[:-1]) + _der(0xA0, _der(0x30, extensions))
    return _der(0x30, _der(0x30, tbs) + rest)


def _version_three(crl_der: bytes) -> bytes:
    elements, rest = _tbs_elements(crl_der)
    assert elements[0] == b"\x02\x01\x01"
    return _der(0x30, _der(0x30, b"\x02\x01\x02" + b"".join(elements[1:])) + rest)


@dataclasses.dataclass(frozen=True, eq=False)
class _TamperedRootCrl(SimulatedPlatform):
    """A machine whose agent sends, with its quote, the root CA CRL tampered (no key needed)."""

    tamper: str = "twice"

    def collateral(self, at: datetime, **kw: object) -> Collateral:
        c = super().collateral(at, **kw)  # type: ignore[arg-type]
        tampered = _extension_listed_twice(c.root_ca_crl) if self.tamper == "twice" else _version_three(c.root_ca_crl)
        return dataclasses.replace(c, root_ca_crl=tampered)


@pytest.mark.parametrize(
    "tamper,named",
    [("twice", "Duplicate 2.5.29.20 extension found"), ("version", "2 is not a valid CRL version")],
)
def test_a_root_crl_cryptography_refuses_untyped_fails_the_quote_with_its_reason(
    world: World, tamper: str, named: str
) -> None:
    machine = SimulatedPlatform.create(world.tmp / f"tampered-crl-{tamper}", authority=world.platforms[0])
    fields = {f.name: getattr(machine, f.name) for f in dataclasses.fields(machine)}
    host = world.start_host(machine=_TamperedRootCrl(**fields, tamper=tamper))
    verdict = world.admin.attest(host.name)
    assert not verdict["trusted"]
    message = _quote_reason(verdict)
    assert "root CA CRL is not a valid DER CRL" in message and named in message
    assert count(world, TRUSTED_HOST, host.name) == 0
