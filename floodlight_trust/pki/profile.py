"""Certificate profiles: what an enroll rule of the policy says a VNF's certificate looks like.

Shared by the policy language (which writes them) and the CA (which follows them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from floodlight_trust.pki.grants import RestGrant

# cryptography is imported by the one function that builds an x509 value: compiling a policy (in a
# fresh `ftrust policy` process) does not need it.
if TYPE_CHECKING:
    from cryptography import x509

# The placeholders render() fills in; anything else in braces is a mistake the policy checker names.
PLACEHOLDERS = ("vnf", "host")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# Names to render a template with when checking it before any VNF exists.
SAMPLE_NAMES = {"vnf": "vnf-example-1", "host": "host-example-1"}


def placeholders_in(template: str) -> list[str]:
    """The ``{name}`` placeholders of a template, in order (known or not)."""
    return _PLACEHOLDER.findall(template)


def fill(template: str, *, vnf: str, host: str) -> str:
    return template.replace("{vnf}", vnf).replace("{host}", host)


class KeyType(StrEnum):
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"


@dataclass(frozen=True, slots=True)
class CertificateProfile:
    """The certificate a VNF receives once attested.

    ``subject`` is an RFC 4514 string (``CN=vnf-firewall,O=example``); ``{vnf}`` and ``{host}`` in the
    subject and SANs are replaced by the enrolled VNF's and host's names. The VNF's identity goes in a
    SAN URI (``spiffe://...`` or ``urn:ftrust:vnf:...``) so Floodlight-side tooling can read it.

    ``rest_grants`` are the enroll rule's REST grants (``floodlight_trust.pki.grants``). ``vnf`` is
    true for the profile of an enrolled VNF (what :meth:`render` returns): the CA then marks the
    certificate with the VNF certificate policy and writes the grants extension, so the controller
    can tell a VNF certificate from any other certificate of the same CA.
    """

    subject: str = "CN={vnf}"
    san_dns: tuple[str, ...] = ()
    san_uris: tuple[str, ...] = ("urn:ftrust:vnf:{vnf}",)
    validity_seconds: int = 3600
    key_type: KeyType = KeyType.EC_P256
    rest_grants: tuple[RestGrant, ...] = ()
    vnf: bool = False

    def render(self, *, vnf: str, host: str) -> CertificateProfile:
        def sub(text: str) -> str:
            return fill(text, vnf=vnf, host=host)

        return CertificateProfile(
            subject=sub(self.subject),
            san_dns=tuple(sub(s) for s in self.san_dns),
            san_uris=tuple(sub(s) for s in self.san_uris),
            validity_seconds=self.validity_seconds,
            key_type=self.key_type,
            rest_grants=self.rest_grants,
            vnf=True,
        )


def end_entity_key_usage(*, key_encipherment: bool = False) -> x509.KeyUsage:
    """The key usage of every end-entity certificate the project issues (VNF clients, the VM's TLS
    server): signing only, never certificate or CRL signing; key encipherment only for RSA keys."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
