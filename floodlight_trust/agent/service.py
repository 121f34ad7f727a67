"""The agent's HTTP service: the VM challenges it, it answers with evidence, and installs credentials.

Endpoints (messages in ``floodlight_trust/protocol/schemas``, documented in docs/protocol.md):

    GET  /v1/info                       -> agent_info
    POST /v1/host/evidence              challenge -> host_evidence
    POST /v1/vnfs/{vnf}/evidence        challenge -> enclave_evidence
    POST /v1/vnfs/{vnf}/credentials     credentials -> credentials_ack
    GET  /v1/tpm/registration           -> tpm_registration (EK, EK certificate, AK), with a TPM
    POST /v1/tpm/activate               tpm_activation -> tpm_activated (TPM2_ActivateCredential)
    GET  /v1/health, GET /metrics       liveness and Prometheus metrics (as on every listener)

The agent relays to each VNF's own enclave process (``agent/backends``): the enclave quotes over
its own key and judges the credentials itself; the agent holds no VNF key.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
from pathlib import Path
from typing import Any

from floodlight_trust.agent.backends import EnclaveBackend
from floodlight_trust.agent.imasource import ImaSource
from floodlight_trust.agent.tpm import Tpm
from floodlight_trust.errors import InputError
from floodlight_trust.http.server import JsonApp, Request, server_tls_context
from floodlight_trust.protocol import b64encode, validate, validate_outbound
from floodlight_trust.protocol.binding import (
    host_report_data_for_digest,
    host_report_data_with_tpm,
    tpm_qualifying_data,
)

log = logging.getLogger("floodlight_trust.agent")

# What a TPM-anchored host quotes: PCR 10 (IMA) and the boot PCRs 0-7, in the sha256 bank.
TPM_SELECTION: dict[str, tuple[int, ...]] = {"sha256": (0, 1, 2, 3, 4, 5, 6, 7, 10)}


class Agent:
    """The agent's behaviour, independent of HTTP (the service and agent-initiated enrollment use it)."""

    def __init__(self, host: str, backend: EnclaveBackend, ima: ImaSource, *, tpm: Tpm | None = None):
        self.host = host
        self.backend = backend
        self.ima = ima
        self.tpm = tpm  # with a TPM, host evidence is anchored in it (docs/protocol.md)
        # The list read last time and a running SHA-256 over it: the next read that extends it
        # (memcmp) hashes only the new bytes. Whatever the VM receives is bound to the SHA-256 of the
        # exact bytes read now either way.
        self._ima_hash: tuple[bytes, hashlib._Hash] | None = None

    def _ima_list_digest(self, data: bytes) -> bytes:
        held = self._ima_hash
        if held is not None and len(data) >= len(held[0]) and data.startswith(held[0]):
            hasher = held[1].copy()
            hasher.update(memoryview(data)[len(held[0]) :])
        else:
            hasher = hashlib.sha256(data)
        self._ima_hash = (data, hasher)
        return hasher.digest()

    def info(self) -> dict[str, Any]:
        doc = {
            "host": self.host,
            "backend": self.backend.name,
            "simulated": self.backend.simulated,
            "enclaves": [{"vnf": e.vnf, "mrenclave": e.mrenclave} for e in self.backend.vnfs.infos()],
        }
        validate_outbound("agent_info", doc)
        return doc

    def host_evidence(self, nonce: bytes, ima_offset: int = 0) -> dict[str, Any]:
        """Host evidence: a quote binding the nonce and the WHOLE IMA list; the list is sent from
        byte ``ima_offset`` on (the VM holds the bytes before it), or whole when the list is shorter
        than that (it was truncated: the VM then names what changed)."""
        tpm_doc: dict[str, Any] | None = None
        if self.tpm is None:
            ima_list, source = self.ima.read()
            report_data = host_report_data_for_digest(nonce, self._ima_list_digest(ima_list))
        else:
            ima_list, source, tpm_doc, attest = self._tpm_quote(nonce)
            report_data = host_report_data_with_tpm(nonce, self._ima_list_digest(ima_list), attest)
        ev = self.backend.host_evidence(report_data)
        offset = ima_offset if 0 < ima_offset <= len(ima_list) else 0
        doc = {
            "host": self.host,
            "nonce": nonce.hex(),
            "evidence_type": ev.evidence_type,
            "quote": b64encode(ev.quote),
            "collateral": ev.collateral,
            "ima_list": b64encode(memoryview(ima_list)[offset:]),
            "ima_offset": offset,
            "ima_source": source,
        }
        if tpm_doc is not None:
            doc["tpm"] = tpm_doc
        validate_outbound("host_evidence", doc)
        return doc

    def _tpm_quote(self, nonce: bytes) -> tuple[bytes, str, dict[str, Any], bytes]:
        """A TPM quote of PCR 10 and the boot PCRs over the nonce's qualifying data, and the IMA list
        it covers: read before and after the quote, again when the kernel measured in between."""
        from floodlight_trust.evidence.tpm.structures import parse_attest, parse_pcr_file, pcrs_to_json

        assert self.tpm is not None
        for _ in range(5):
            before, source = self.ima.read()
            quote = self.tpm.quote(tpm_qualifying_data(nonce), TPM_SELECTION)
            after, source = self.ima.read()
            if after == before:
                break
        # Parsed here only to send the PCR values in the protocol's form; the VM judges the bytes.
        pcrs = parse_pcr_file(quote.pcrs, parse_attest(quote.attest).quote.selections)
        doc = {"attest": b64encode(quote.attest), "signature": b64encode(quote.signature), "pcrs": pcrs_to_json(pcrs)}
        return after, source, doc, quote.attest

    def tpm_registration(self) -> dict[str, Any]:
        if self.tpm is None:
            raise InputError(f"the agent of {self.host} has no TPM configured (agent.tpm)")
        endorsement = self.tpm.endorsement()
        doc = {
            "host": self.host,
            "ek_public": b64encode(endorsement.ek_public),
            "ek_certificate": b64encode(endorsement.ek_certificate) if endorsement.ek_certificate else None,
            "ak_public": b64encode(self.tpm.attestation_key()),
        }
        validate_outbound("tpm_registration", doc)
        return doc

    def tpm_activate(self, message: dict[str, Any]) -> dict[str, Any]:
        from floodlight_trust.protocol import b64decode

        validate("tpm_activation", message)
        if self.tpm is None:
            raise InputError(f"the agent of {self.host} has no TPM configured (agent.tpm)")
        secret = self.tpm.activate_credential(b64decode(message["credential"], what="tpm_activation.credential"))
        doc = {"host": self.host, "secret": b64encode(secret)}
        validate_outbound("tpm_activated", doc)
        return doc

    def enclave_evidence(self, vnf: str, nonce: bytes, key_mode: str | None = None) -> dict[str, Any]:
        """Relay the VM's nonce to the VNF's own enclave and its quote back: the enclave computes
        REPORTDATA from the nonce and its own key; the agent adds only who it is."""
        quote = self.backend.vnfs.get(vnf).evidence(nonce)
        doc: dict[str, Any] = {
            "host": self.host,
            "vnf": vnf,
            "nonce": nonce.hex(),
            "evidence_type": quote["evidence_type"],
            "quote": quote["quote"],
            "collateral": quote["collateral"],
            "public_key": quote["public_key"],
        }
        if key_mode:
            doc["key_mode"] = key_mode
        validate_outbound("enclave_evidence", doc)
        return doc

    def install(self, vnf: str, message: dict[str, Any], *, validated: bool = False) -> dict[str, Any]:
        """Relay credentials the VM sent to the VNF's enclave, which judges them itself (pinned VM
        CA, its own key, the VM's provisioning signature) and refuses with its reasons
        (``CredentialsRefused``, a 403). ``validated`` when the caller already checked the message
        (it was built from an ``enrollment`` document validated on arrival)."""
        if not validated:
            validate("credentials", message)
        if message["vnf"] != vnf or message["host"] != self.host:
            raise InputError(f"credentials for {message['host']}/{message['vnf']} sent to {self.host}/{vnf}")
        ack = self.backend.vnfs.get(vnf).install(message)
        if ack.get("vnf") != vnf:
            raise InputError(f"the enclave of {vnf} acknowledged credentials for {ack.get('vnf')!r}")
        log.info("enclave %s installed certificate %s", vnf, message["serial"][:40])
        validate_outbound("credentials_ack", ack)
        return ack


def _challenge(request: Request) -> tuple[bytes, int]:
    body = request.json()
    validate("challenge", body)
    return bytes.fromhex(body["nonce"]), int(body.get("ima_offset", 0))


def _nonce(request: Request) -> bytes:
    return _challenge(request)[0]


def make_app(agent: Agent, *, max_body_bytes: int = 4 * 1024 * 1024) -> JsonApp:
    app = JsonApp(max_body_bytes=max_body_bytes, name="agent")

    @app.route("GET", "/v1/info")
    def info(request: Request) -> Any:
        return agent.info()

    @app.route("POST", "/v1/host/evidence")
    def host_evidence(request: Request) -> Any:
        return agent.host_evidence(*_challenge(request))

    @app.route("POST", "/v1/vnfs/{vnf}/evidence")
    def enclave_evidence(request: Request, vnf: str) -> Any:
        return agent.enclave_evidence(vnf, _nonce(request))

    @app.route("POST", "/v1/vnfs/{vnf}/credentials")
    def credentials(request: Request, vnf: str) -> Any:
        return agent.install(vnf, request.json())

    @app.route("GET", "/v1/tpm/registration")
    def tpm_registration(request: Request) -> Any:
        return agent.tpm_registration()

    @app.route("POST", "/v1/tpm/activate")
    def tpm_activate(request: Request) -> Any:
        return agent.tpm_activate(request.json())

    app.add_operational_routes(lambda: {"status": "ok", "host": agent.host, "backend": agent.backend.name})
    return app


def tls_context(certificate: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """Server-side TLS for the agent with its certificate and key (PEM files): TLS 1.2+, 1.2 with
    ECDHE and AEAD only."""
    from floodlight_trust.errors import Location, SecretError

    key_path = Path(key)
    if os.name == "posix" and key_path.exists() and key_path.stat().st_mode & 0o077:
        raise SecretError(
            "agent TLS key is accessible by group or others",
            location=Location(str(key_path)),
            hint=f"chmod 600 {key_path}",
        )
    context = server_tls_context()
    try:
        context.load_cert_chain(str(certificate), str(key_path))
    except (OSError, ssl.SSLError) as e:
        raise InputError(
            f"cannot load the agent TLS certificate/key: {e}", location=Location(str(certificate))
        ) from None
    return context


def ima_list_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def enroll_via_vm(
    agent: Agent, vm: Any, vnf: str, *, key_mode: str | None = None, attest_host: bool = True
) -> dict[str, Any]:
    """Agent-initiated enrollment through the VM's agent-facing API (``VmClient``).

    Attests the host first (unless ``attest_host`` is False and the VM still trusts it), then the
    VNF enclave; installs the credentials when the VM allows. Returns the VM's enrollment document
    (``allowed`` false with every reason when refused).
    """
    if attest_host:
        verdict = vm.submit_host_evidence(agent.host_evidence(vm.nonce("host", agent.host)))
        if not verdict["trusted"]:
            return {"host_verdict": verdict, "allowed": False, "reasons": verdict["reasons"]}
    nonce = vm.nonce("enclave", agent.host, vnf)
    result: dict[str, Any] = vm.submit_enclave_evidence(agent.enclave_evidence(vnf, nonce, key_mode))
    if result["allowed"]:
        agent.install(
            vnf,
            {
                "host": agent.host,
                "vnf": vnf,
                "serial": result["serial"],
                "certificate_chain": result["certificate_chain"],
                "wrapped_key": result.get("wrapped_key"),
                **({"provisioning": result["provisioning"]} if result.get("provisioning") else {}),
            },
            validated=True,  # built from the enrollment document VmClient validated on arrival
        )
    return result
