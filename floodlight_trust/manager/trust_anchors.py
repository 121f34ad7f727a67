"""The roots the VM verifies evidence under, from its configuration: Intel's SGX root (and the
simulated roots, only when ``vm.trust_simulated_sgx`` says so, loudly), and the TPM manufacturer
CAs, pinned EKs and the UNSAFE EK setting of ``[tpm]``."""

from __future__ import annotations

import logging
from typing import Any

from cryptography import x509

from floodlight_trust.config import Config
from floodlight_trust.errors import ConfigError, Location

log = logging.getLogger("floodlight_trust.manager.trust_anchors")


def load_anchors(config: Config) -> list[Any]:
    """Intel's root, plus the simulated roots when ``vm.trust_simulated_sgx = true`` (loudly)."""
    from floodlight_trust.evidence.dcap import TrustAnchor

    anchors = [TrustAnchor.intel()]
    if config.get("vm", "trust_simulated_sgx"):
        roots = config.path("vm", "simulated_sgx_roots")
        if roots is None:
            raise ConfigError(
                "vm.trust_simulated_sgx = true needs vm.simulated_sgx_roots",
                location=Location(config.source),
                hint="a PEM file with the simulated root CA(s), or a simulated platform directory",
            )
        from floodlight_trust.fileio import read_bytes

        if roots.is_dir():  # a simulated platform directory (floodlight_trust.sgxsim)
            roots = roots / "sim-root-ca.pem"
        data = read_bytes(roots, what="simulated SGX roots")
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as e:
            raise ConfigError(f"not PEM certificates: {e}", location=Location(str(roots))) from None
        anchors += [TrustAnchor.unsafe_simulated(c) for c in certs]
    return anchors


def tpm_settings(config: Config) -> Any:
    """The ``[tpm]`` section: manufacturer roots directory, pinned EKs, the UNSAFE EK setting."""
    from floodlight_trust.clients.tpm_roots import read_roots_directory
    from floodlight_trust.evidence.tpm.registration import EndorsementPolicy
    from floodlight_trust.manager.tpm_attestation import TpmSettings

    roots_dir = config.path("tpm", "manufacturer_roots")
    unsafe = bool(config.get("tpm", "unsafe_accept_ek_without_certificate"))
    if unsafe:
        log.warning("tpm.unsafe_accept_ek_without_certificate is set: TPMs without an EK certificate are trusted")
    return TpmSettings(
        EndorsementPolicy(
            manufacturer_cas=read_roots_directory(roots_dir) if roots_dir else (),
            pinned_ek_spki_sha256=frozenset(config.get("tpm", "pinned_ek_spki_sha256") or ()),
            unsafe_accept_ek_without_certificate=unsafe,
        )
    )
