"""An enclave image: what a VNF enclave IS, measured into its MRENCLAVE.

An image is a directory holding ``enclave.toml``, the VM CA certificate the enclave pins, and the
VNF's code. Under Gramine every file of it is a trusted file of the manifest; on the simulated
platform the whole directory is measured. Changing any of it, the pin included, changes the
enclave's identity, so a policy naming the MRENCLAVE also names the pin. An image is a BUILD: several
VNF instances may run it (the VNF name is the deployment's, ``enclave.vnf``, and the VM binds it to
the enclave's key in its provisioning signature).

``enclave.toml``::

    [enclave]
    vm_ca = "vm-ca.pem"               # the pinned VM CA (relative to the image)
    controller_url = "https://floodlight:8081"   # optional: the controller the VNF calls
    controller_ca = "controller-ca.pem"          # optional: pin of the controller's TLS certificate
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from floodlight_trust.errors import InputError, Location
from floodlight_trust.fileio import read_bytes

IMAGE_CONFIG = "enclave.toml"
_KEYS = {"vm_ca", "controller_url", "controller_ca"}


@dataclass(frozen=True, slots=True)
class EnclaveImage:
    directory: Path
    vm_ca: x509.Certificate
    controller_url: str | None
    controller_ca: Path | None

    @classmethod
    def load(cls, directory: Path) -> EnclaveImage:
        path = directory / IMAGE_CONFIG
        raw = read_bytes(path, what="enclave image configuration")
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise InputError(f"invalid TOML: {e}", location=Location(str(path))) from None
        section = doc.get("enclave")
        if not isinstance(section, dict) or set(doc) != {"enclave"}:
            raise InputError("expected exactly one [enclave] table", location=Location(str(path)))
        unknown = set(section) - _KEYS
        if unknown:
            raise InputError(f"unknown key enclave.{sorted(unknown)[0]}", location=Location(str(path)))
        for key in ("vm_ca", "controller_url", "controller_ca"):
            if key in section and not isinstance(section[key], str):
                raise InputError(f"enclave.{key} must be a string", location=Location(str(path)))
        if "vm_ca" not in section:
            raise InputError(
                "enclave.vm_ca is missing: an enclave must pin the VM CA it accepts credentials from",
                location=Location(str(path)),
            )
        ca_path = directory / section["vm_ca"]
        try:
            vm_ca = x509.load_pem_x509_certificate(read_bytes(ca_path, what="pinned VM CA"))
        except ValueError:
            raise InputError("the pinned VM CA is not a PEM certificate", location=Location(str(ca_path))) from None
        controller_ca = directory / section["controller_ca"] if "controller_ca" in section else None
        return cls(directory, vm_ca, section.get("controller_url"), controller_ca)


def build_image(
    directory: Path,
    vm_ca_pem: bytes,
    *,
    files: dict[str, bytes] | None = None,
    controller_url: str | None = None,
    controller_ca_pem: bytes | None = None,
) -> Path:
    """Write an image directory: ``enclave.toml``, the pinned VM CA and ``files`` (the VNF's code)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        (directory / name).write_bytes(data)
    (directory / "vm-ca.pem").write_bytes(vm_ca_pem)
    lines = ["[enclave]", 'vm_ca = "vm-ca.pem"']
    if controller_url:
        lines.append(f'controller_url = "{controller_url}"')
    if controller_ca_pem:
        (directory / "controller-ca.pem").write_bytes(controller_ca_pem)
        lines.append('controller_ca = "controller-ca.pem"')
    (directory / IMAGE_CONFIG).write_text("\n".join(lines) + "\n")
    return directory
