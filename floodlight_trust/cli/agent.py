"""`ftrust agent` commands: run the container-host agent."""

from __future__ import annotations

import argparse
import logging
import socket
from typing import Any

from floodlight_trust.cli.output import add_group, add_json, emit, load_config
from floodlight_trust.config import Config
from floodlight_trust.errors import ConfigError, ExitCode, Location


def build_agent(config: Config) -> Any:
    from floodlight_trust.agent.backends import load_backend
    from floodlight_trust.agent.imasource import ImaSource
    from floodlight_trust.agent.service import Agent

    a = config.values["agent"]
    name = a["name"] or socket.gethostname().split(".")[0]
    if a["backend"] == "sim":
        platform_dir = config.path("agent", "sim_platform_dir") or config.state_dir / "sim-platform"
        backend = load_backend(
            "sim",
            platform_dir=platform_dir,
            socket_dir=config.path("agent", "enclave_socket_dir"),
            evidence=a["sim_evidence"],
        )
    elif a["backend"] == "gramine":
        backend = load_backend(
            "gramine",
            root=config.path("agent", "gramine_root"),
            socket_dir=config.path("agent", "enclave_socket_dir"),
        )
    else:
        raise ConfigError(
            f"unknown agent.backend {a['backend']!r}", location=Location(config.source), hint="'sim' or 'gramine'"
        )
    ima = ImaSource(config.path("agent", "ima_log"), config.path("agent", "ima_log_fallback"))
    return Agent(name, backend, ima, tpm=build_tpm(config, ima))


def build_tpm(config: Any, ima: Any) -> Any:
    """The host's TPM per ``agent.tpm``: the kernel device, a SIMULATED swtpm (started here and
    stopped with the agent), or any tpm2-tools TCTI; None without the setting."""
    from floodlight_trust.agent.tpm import DEVICE_TCTI, Tpm2ToolsTpm

    setting = config.get("agent", "tpm")
    if not setting:
        return None
    if setting == "device":
        return Tpm2ToolsTpm(DEVICE_TCTI)
    if setting == "swtpm":
        import sys

        from floodlight_trust.agent import swtpm

        state = config.path("agent", "tpm_state_dir") or config.state_dir / "swtpm"
        sim = swtpm.Swtpm(state).start()
        print("ftrust: WARNING: agent.tpm = swtpm: a SIMULATED TPM proves nothing about real hardware", file=sys.stderr)
        # The simulated host's kernel extends its IMA list into the simulated TPM's PCR 10.
        return swtpm.KernelSimulatingTpm(Tpm2ToolsTpm(sim.tcti), ima, sim)  # stopped with the agent
    return Tpm2ToolsTpm(setting)


def _serve(args: argparse.Namespace) -> int:
    from floodlight_trust.agent.service import make_app, tls_context
    from floodlight_trust.cli.vm import wait_for_signal
    from floodlight_trust.http.server import HttpServer
    from floodlight_trust.manager.service import listener_timeouts

    config = load_config(args)
    agent = build_agent(config)
    cert, key = config.path("agent", "tls_certificate"), config.path("agent", "tls_key")
    if (cert is None) != (key is None):
        raise ConfigError("agent.tls_certificate and agent.tls_key go together", location=Location(config.source))
    context = tls_context(cert, key) if cert is not None and key is not None else None
    logging.getLogger("floodlight_trust.access").setLevel(logging.INFO)
    server = HttpServer(
        make_app(agent),
        host=config.get("agent", "host"),
        port=config.get("agent", "port"),
        ssl_context=context,
        timeouts=listener_timeouts(config, "agent"),
        name="agent",
    ).start()
    if context is None:
        logging.getLogger("floodlight_trust.agent").warning(
            "agent serves plain HTTP; set agent.tls_certificate/tls_key for HTTPS"
        )
    # A simulated backend is warned about once, by the backend itself (agent.backends.sim).
    print(
        f"agent {agent.host} ({agent.backend.name}) on {server.url}; VNF enclave sockets in {agent.backend.vnfs.socket_dir or '(none)'}",
        flush=True,
    )
    from floodlight_trust import systemd

    systemd.notify("READY=1")  # Type=notify: the listener is up
    try:
        wait_for_signal()
    finally:
        systemd.notify("STOPPING=1")
        server.stop()
        simulator = getattr(agent.tpm, "simulator", None)
        if simulator is not None:
            simulator.stop()
    return 0


def _enroll(args: argparse.Namespace) -> int:
    from floodlight_trust.agent.service import enroll_via_vm
    from floodlight_trust.manager.client import VmClient

    config = load_config(args)
    url = config.get("agent", "vm_url")
    if not url:
        raise ConfigError("agent.vm_url is not set", location=Location(config.source))
    pinned = config.path("agent", "vm_certificate")
    vm = VmClient(url, server_certificate=pinned if pinned else True)
    doc = enroll_via_vm(build_agent(config), vm, args.vnf, key_mode=args.key_mode)
    text = (
        f"{args.vnf}: ENROLLED, serial {doc.get('serial')}"
        if doc["allowed"]
        else f"{args.vnf}: REFUSED\n" + "\n".join(f"  - {r['message']}" for r in doc["reasons"])
    )
    emit(args, doc, text)
    return 0 if doc["allowed"] else int(ExitCode.DENIED)


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)
    p = sub.add_parser("serve", help="serve host and VNF evidence to the VM and install credentials")
    p.set_defaults(func=_serve, progress=False)  # a service: no progress line
    p = sub.add_parser("enroll", help="agent-initiated: attest this host and enroll one VNF at agent.vm_url")
    p.add_argument("vnf", help="the VNF to enroll (its enclave listens in agent.enclave_socket_dir)")
    p.add_argument(
        "--key-mode",
        choices=("enclave", "vm-generated"),
        help="key generated in the enclave (default) or by the VM and sealed to the enclave",
    )
    add_json(p)
    p.set_defaults(func=_enroll)
