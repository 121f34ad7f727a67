"""Start a VNF enclave from the configuration: its platform, its image, its runtime, its socket.

The shell around :class:`~floodlight_trust.enclave.runtime.EnclaveRuntime`, used by
``ftrust enclave serve`` (the enclave's long-running process: the agent's socket) and
``ftrust enclave call`` (a short process of the same enclave image, which opens the same sealed key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from floodlight_trust.config import Config
from floodlight_trust.enclave.image import EnclaveImage
from floodlight_trust.enclave.platform import EnclavePlatform, GramineEnclave, SimEnclave
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.errors import ConfigError, Location

VNF_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True, slots=True)
class OpenedEnclave:
    image: EnclaveImage
    runtime: EnclaveRuntime
    socket: Path | None


def _platform(config: Config, image: Path, vnf_hint: str) -> EnclavePlatform:
    kind = config.get("enclave", "platform")
    if kind == "gramine":
        sealed = config.path("enclave", "sealed_dir")
        if sealed is None:
            raise ConfigError(
                "enclave.sealed_dir must name the manifest's encrypted mount (e.g. /sealed)",
                location=Location(config.source),
            )
        return GramineEnclave(
            attestation_root=config.path("enclave", "attestation_root") or "/dev/attestation", sealed_dir=sealed
        )
    if kind == "sim":
        platform_dir = config.path("enclave", "sim_platform_dir")
        if platform_dir is None:
            raise ConfigError(
                "enclave.sim_platform_dir must name the host's simulated platform (the agent's sim_platform_dir)",
                location=Location(config.source),
            )
        sealed = config.path("enclave", "sealed_dir") or config.state_dir / f"enclave-{vnf_hint}"
        return SimEnclave.open(
            platform_dir=platform_dir, image=image, sealed_dir=sealed, evidence=config.get("enclave", "sim_evidence")
        )
    raise ConfigError(
        f"unknown enclave.platform {str(kind)[:40]!r}", location=Location(config.source), hint="'sim' or 'gramine'"
    )


def open_enclave(config: Config, *, create_key: bool) -> OpenedEnclave:
    """The enclave described by ``config``'s [enclave] section, its key opened (or, with
    ``create_key`` at first start, generated and sealed)."""
    image_dir = config.path("enclave", "image")
    if image_dir is None:
        raise ConfigError("enclave.image is not set", location=Location(config.source))
    vnf = config.get("enclave", "vnf")
    if not vnf or not VNF_NAME.match(vnf):
        raise ConfigError("enclave.vnf must name this VNF (letters, digits, . _ -)", location=Location(config.source))
    image = EnclaveImage.load(image_dir)
    runtime = EnclaveRuntime.start(vnf, _platform(config, image_dir, vnf), image.vm_ca, create_key=create_key)
    return OpenedEnclave(image, runtime, config.path("enclave", "socket"))
