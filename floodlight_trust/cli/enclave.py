"""`ftrust enclave` commands: run a VNF enclave, call the controller from it, check manifests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from floodlight_trust.cli.output import add_group, add_json, emit, load_config
from floodlight_trust.errors import ConfigError, ExitCode, Location


def _serve(args: argparse.Namespace) -> int:
    from floodlight_trust.cli.vm import wait_for_signal
    from floodlight_trust.enclave.channel import EnclaveResponder
    from floodlight_trust.enclave.service import open_enclave

    config = load_config(args)
    opened = open_enclave(config, create_key=True)
    if opened.socket is None:
        raise ConfigError("enclave.socket is not set", location=Location(config.source))
    runtime = opened.runtime
    responder = EnclaveResponder(runtime, opened.socket).start()
    if runtime.platform.simulated:
        print("ftrust: WARNING: SIMULATED SGX enclave: its quotes prove nothing about real hardware", file=sys.stderr)
    print(
        f"enclave {runtime.vnf} ({runtime.platform.name}) MRENCLAVE {runtime.mrenclave.hex()} on {opened.socket}",
        flush=True,
    )
    try:
        wait_for_signal()
    finally:
        responder.stop()
    return 0


def _info(args: argparse.Namespace) -> int:
    from floodlight_trust.enclave.service import open_enclave

    runtime = open_enclave(load_config(args), create_key=False).runtime
    doc = runtime.info()
    creds = runtime.credentials
    text = f"{runtime.vnf}: MRENCLAVE {doc['mrenclave']} ({runtime.platform.name})\n" + (
        f"  certificate {creds.serial} ({creds.key_mode} key), valid until {creds.not_after:%Y-%m-%dT%H:%M:%SZ}"
        if creds
        else "  no credentials installed"
    )
    emit(args, doc, text)
    return 0


def _call(args: argparse.Namespace) -> int:
    from floodlight_trust.enclave.client import ControllerClient, RevokedError
    from floodlight_trust.enclave.service import open_enclave

    opened = open_enclave(load_config(args), create_key=False)
    url = args.controller or opened.image.controller_url
    if not url:
        raise ConfigError("no controller URL: pass --controller or set controller_url in the image's enclave.toml")
    ca = Path(args.controller_ca) if args.controller_ca else opened.image.controller_ca
    client = ControllerClient(opened.runtime, url, controller_ca=ca)
    vnf = opened.runtime.vnf
    try:
        response = client.get(args.path)
    except RevokedError as e:
        doc = {"vnf": vnf, "path": args.path, "revoked": True, "message": e.message}
        emit(args, doc, f"{vnf}: GET {args.path} REVOKED: {e.message}")
        return int(ExitCode.DENIED)
    doc = {"vnf": vnf, "path": args.path, "revoked": False, **response.to_json()}
    emit(args, doc, f"{vnf}: GET {args.path} -> HTTP {response.status} over {response.tls_version}")
    return 0 if 200 <= response.status < 300 else int(ExitCode.DENIED)


def _measure(args: argparse.Namespace) -> int:
    from floodlight_trust.enclave.image import EnclaveImage
    from floodlight_trust.sgxsim import measure_enclave_image

    image = Path(args.image)
    EnclaveImage.load(image)  # refuse an image the runtime would refuse (no pinned VM CA, ...)
    mrenclave = bytes(measure_enclave_image(image)).hex()
    emit(args, {"image": str(image), "mrenclave": mrenclave, "simulated": True}, mrenclave)
    return 0


def _variables(args: argparse.Namespace) -> tuple[Any, dict[str, str]]:
    from floodlight_trust.enclave.manifest import interpreter_layout, template_variables

    layout = interpreter_layout(args.python or sys.executable)
    variables = template_variables(layout)
    for item in args.define or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"-D expects NAME=VALUE, got {item[:80]!r}")
        variables[key] = value
    return layout, variables


def _manifest_vars(args: argparse.Namespace) -> int:
    _, variables = _variables(args)
    for key, value in variables.items():
        if any(c.isspace() for c in value):
            raise ConfigError(f"{key} contains white space; pass it to gramine-manifest by hand: {value[:80]!r}")
    emit(args, variables, " ".join(f"-D{k}={v}" for k, v in variables.items()))
    return 0


def _check_manifest(args: argparse.Namespace) -> int:
    import os

    from floodlight_trust.enclave.manifest import GRAMINE_LIBOS, check_manifest, load_manifest, policy_expectation
    from floodlight_trust.reasons import ReasonLevel

    if (args.policy is None) != (args.enclave is None):
        raise ConfigError("--policy and --enclave go together (the enclave policy that judges this enclave)")
    layout, variables = _variables(args)
    manifest = Path(args.manifest)
    doc = load_manifest(manifest, variables)
    expectation = policy_expectation(Path(args.policy), args.enclave) if args.policy else None
    reasons = check_manifest(
        doc,
        layout=layout,
        exists=os.path.exists,
        gramine_installed=os.path.exists(GRAMINE_LIBOS),
        expectation=expectation,
    )
    failures = [r for r in reasons if r.level != ReasonLevel.NOTE]
    result = {
        "manifest": str(manifest),
        "ok": not failures,
        "reasons": [r.to_json() for r in reasons],
        "libraries": list(layout.libraries),
    }
    lines = [f"{manifest}: {'OK' if not failures else 'REFUSED'} ({len(layout.libraries)} libraries checked)"]
    lines += [f"  - {r.rule}: {r.message}" for r in failures]
    lines += [f"  note {r.rule}: {r.message}" for r in reasons if r.level == ReasonLevel.NOTE]
    emit(args, result, "\n".join(lines))
    return 0 if not failures else int(ExitCode.DENIED)


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)
    p = sub.add_parser("serve", help="run this VNF enclave: its key, its quotes, its credentials, on enclave.socket")
    p.set_defaults(func=_serve)
    p = sub.add_parser("info", help="this enclave's MRENCLAVE, key and installed certificate")
    add_json(p)
    p.set_defaults(func=_info)
    p = sub.add_parser("call", help="as this VNF enclave: GET a controller REST path over mutual TLS")
    p.add_argument("path", metavar="PATH", help="REST path, e.g. /wm/core/controller/switches/json")
    p.add_argument("--controller", metavar="URL", help="controller base URL (default: the image's controller_url)")
    p.add_argument("--controller-ca", metavar="PEM", help="verify the controller's certificate against this PEM")
    add_json(p)
    p.set_defaults(func=_call)
    p = sub.add_parser("measure", help="the SIMULATED platform's MRENCLAVE of an image directory (for the policy)")
    p.add_argument("image", metavar="IMAGE", help="the enclave image directory (enclave.toml, vm-ca.pem, code)")
    add_json(p)
    p.set_defaults(func=_measure)
    for cmd, helptext, func in (
        (
            "check-manifest",
            "check a Gramine manifest (or template) against the runtime and the policy",
            _check_manifest,
        ),
        (
            "manifest-vars",
            "the -D variables of the shipped Gramine templates, computed from an interpreter",
            _manifest_vars,
        ),
    ):
        p = sub.add_parser(cmd, help=helptext)
        if cmd == "check-manifest":
            p.add_argument("manifest", metavar="MANIFEST", help="a Gramine manifest, or a template (*.template)")
            p.add_argument("--policy", metavar="FILE", help="the VM's policy")
            p.add_argument("--enclave", metavar="NAME", help="the enclave policy judging this enclave")
        p.add_argument("--python", metavar="PATH", help="the interpreter the enclave runs (default: this one)")
        p.add_argument("-D", dest="define", action="append", metavar="NAME=VALUE", help="a template variable")
        add_json(p)
        p.set_defaults(func=func)
