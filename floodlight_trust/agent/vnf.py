"""The VNF side: call the controller with the credentials the VM provisioned to this VNF's enclave.

In the paper the enclave itself holds the TLS session to the controller. With the ``sim`` backend
the VNF process proves it is the enrolled enclave by deriving the sealing key from its own image
(MRENCLAVE) on this platform; only then does its sealed key open. A VNF whose image changed gets
another MRENCLAVE, another sealing key, and no usable key.
"""

from __future__ import annotations

from pathlib import Path

from floodlight_trust.agent.sealing import SealedCredentials, open_sealed, platform_seal_secret, sealing_key
from floodlight_trust.config import Config
from floodlight_trust.errors import ConfigError, InputError, Location
from floodlight_trust.floodlight.client import CheckResult, check


def sim_credentials(config: Config, vnf: str) -> SealedCredentials:
    """Open ``vnf``'s sealed credentials as the enclave built from ``agent.vnf_dir/VNF`` would."""
    from floodlight_trust.sgxsim import measure_enclave_image

    if config.get("agent", "backend") != "sim":
        raise ConfigError(
            "vnf-call opens sealed credentials of the sim backend only",
            location=Location(config.source),
            hint="with Gramine, the VNF inside the enclave uses its provisioned key directly",
        )
    vnf_dir = config.path("agent", "vnf_dir")
    credentials_dir = config.path("agent", "credentials_dir")
    if vnf_dir is None or credentials_dir is None:
        raise ConfigError("agent.vnf_dir and agent.credentials_dir must be set", location=Location(config.source))
    image = vnf_dir / vnf
    if not image.exists():
        raise InputError(f"no enclave image for VNF {vnf!r}", location=Location(str(image)))
    platform_dir = config.path("agent", "sim_platform_dir") or config.state_dir / "sim-platform"
    seal = sealing_key(platform_seal_secret(platform_dir, create=False), bytes(measure_enclave_image(image)))
    return open_sealed(credentials_dir, vnf, seal)


def call_controller(
    credentials: SealedCredentials, url: str, *, path: str, controller_ca: Path | None, timeout: float = 10.0
) -> CheckResult:
    """One GET of ``path`` on the controller over mutual TLS with the VNF's certificate."""
    return check(
        url,
        credentials.chain,
        credentials.key,
        controller_ca,
        path=path,
        timeout=timeout,
        key_password=credentials.password,
    )
