"""`ftrust vm` commands: run the Verification Manager and administer it over its HTTPS API."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from floodlight_trust import clock, systemd
from floodlight_trust.cli.output import add_group, add_json, emit, load_config, table
from floodlight_trust.config import Config
from floodlight_trust.errors import ExitCode, InputError


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1):
        pass


def _serve(args: argparse.Namespace) -> int:
    from floodlight_trust.manager.service import build_service
    from floodlight_trust.policy_files import check_policy_path, load_policy_file

    config = load_config(args)
    policy_path = Path(args.policy) if args.policy else check_policy_path(config)
    policy = load_policy_file(policy_path)
    password = config.secret("ca", what="CA key password")
    interval = None
    if args.reattest_interval is not None:
        from floodlight_trust.manager.reattest import check_interval

        interval = check_interval(args.reattest_interval)
    logging.getLogger("floodlight_trust.access").setLevel(logging.INFO)  # the API's access log
    service = build_service(
        config, password=password, policy=policy, policy_path=policy_path, reattest_interval_seconds=interval
    ).start()
    # Simulated SGX is warned about once, by the Verification Manager itself (manager.workflow).
    print(f"Verification Manager API on {service.api_url} (TLS certificate {service.tls_certificate})")
    print(f"CRL and OCSP on http://{config.get('vm', 'host')}:{service.publish.port}")
    print(f"policy version {service.vm.policy_version}")
    every = service.scheduler.interval
    print(f"re-attesting trusted hosts every {every:g} s" if every > 0 else "re-attestation loop off", flush=True)
    systemd.notify("READY=1")  # Type=notify: both listeners are up
    try:
        wait_for_signal()
    finally:
        systemd.notify("STOPPING=1")
        service.stop()
    return 0


def _admin_cert(args: argparse.Namespace) -> int:
    from floodlight_trust.manager.admins import issue_admin_certificate
    from floodlight_trust.statestore import open_admin_ca, open_state

    config = load_config(args)
    password = config.secret("ca", what="CA key password")
    key_password = _admin_key_password(config)
    now = clock.now()
    admin_ca = open_admin_ca(config, password, open_state(config), create_at=now)
    out = Path(args.out) if args.out else config.state_dir / "admin"
    cert, key = issue_admin_certificate(
        admin_ca, args.name, out, at=now, password=key_password, validity_days=args.days
    )
    doc = {"certificate": str(cert), "key": str(key), "issuer": str(admin_ca.cert_path), "days": args.days}
    emit(
        args,
        doc,
        f"admin certificate {cert} (admin CA {admin_ca.cert_path}, {args.days} days)\nadmin key         {key}",
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from floodlight_trust.statestore import migrate_state

    report = migrate_state(load_config(args))
    if report.applied:
        lines = [f"applied {len(report.applied)} migration(s) to {report.database}:"]
        lines += [f"  {s.component} {s.version}: {s.purpose}" for s in report.applied]
    else:
        lines = [f"{report.database} is up to date ({report.total} migrations)"]
    emit(args, report.to_json(), "\n".join(lines))
    return 0


def _admin_key_password(config: Config) -> Any:
    return config.secret(
        "vm", env_key="admin_key_password_env", file_key="admin_key_password_file", what="admin key password"
    )


def _client(args: argparse.Namespace) -> Any:
    from floodlight_trust.manager.client import VmClient

    config: Config = load_config(args)
    state = config.state_dir
    url = args.vm_url or f"https://localhost:{config.get('vm', 'port')}"
    cert = Path(args.admin_cert) if args.admin_cert else state / "admin" / "admin.pem"
    key = Path(args.admin_key) if args.admin_key else cert.with_suffix(".key")
    server = Path(args.vm_certificate) if args.vm_certificate else state / "vm-tls" / "server.pem"
    for p, what in ((cert, "admin certificate"), (key, "admin key"), (server, "VM TLS certificate")):
        if not p.exists():
            raise InputError(
                f"{what} not found: {p}",
                hint="see `ftrust vm admin-cert` and the --admin-cert/--vm-certificate options",
            )
    return VmClient(
        url,
        server_certificate=server,
        client_certificate=(str(cert), str(key)),
        client_key_password=_admin_key_password(config),
    )


def _is_note(r: dict[str, Any]) -> bool:
    return r.get("level") == "note"


def _reason_line(r: dict[str, Any], indent: str = "  ") -> str:
    tag = "note: " if _is_note(r) else ""
    return f"{indent}- {tag}[{r['rule']}] {r['message']}" + (f" ({r['location']})" if r.get("location") else "")


def _reasons_text(doc: dict[str, Any], indent: str = "  ") -> str:
    """Deny-level reasons first (what refused), then the notes, each marked ``note:``."""
    reasons = doc["reasons"]
    ordered = [r for r in reasons if not _is_note(r)] + [r for r in reasons if _is_note(r)]
    return "\n".join(_reason_line(r, indent) for r in ordered)


def _hosts_list(args: argparse.Namespace) -> int:
    hosts = _client(args).hosts()
    rows = [
        (
            h["name"],
            h["status"],
            h["agent_url"],
            h["last_attested_at"],
            h["ima_entries"],
            "yes" if h["simulated"] else "",
        )
        for h in hosts
    ]
    emit(args, hosts, lambda: table(("host", "status", "agent", "last attested", "IMA entries", "simulated"), rows))
    return 0


def _hosts_add(args: argparse.Namespace) -> int:
    pin = None
    if args.agent_cert:
        from floodlight_trust.fileio import read_text

        pin = read_text(args.agent_cert, what="agent TLS certificate")
    doc = _client(args).add_host(args.name, args.agent, args.host_policy, pin, replace=args.replace)
    emit(args, doc, f"{'re-registered' if args.replace else 'registered'} host {doc['name']} at {doc['agent_url']}")
    return 0


def _hosts_remove(args: argparse.Namespace) -> int:
    doc = _client(args).remove_host(args.name, reason=args.reason)
    emit(args, doc, f"removed host {doc['host']}; revoked {len(doc['revoked_serials'])} certificate(s)")
    return 0


def _hosts_repin(args: argparse.Namespace) -> int:
    doc = _client(args).repin_host(args.name, reason=args.reason)
    emit(
        args,
        doc,
        f"host {doc['name']}: its next trusted quote may pin another platform (now {doc.get('platform') or 'none'})",
    )
    return 0


def _hosts_tpm_register(args: argparse.Namespace) -> int:
    doc = _client(args).register_tpm(args.name)
    text = f"host {doc['host']}: TPM registered, AK {doc['ak_name']} pinned (EK trusted by {doc['ek']['how']})"
    text += "".join(f"\n  note: {n}" for n in doc.get("notes", []))
    emit(args, doc, text)
    return 0


def _vnfs_list(args: argparse.Namespace) -> int:
    vnfs = _client(args).vnfs()
    rows = [
        (v["host"], v["vnf"], v["status"], (v["mrenclave"] or "")[:16], v["active_certificates"], v["last_attested_at"])
        for v in vnfs
    ]
    emit(args, vnfs, lambda: table(("host", "vnf", "status", "mrenclave", "active certs", "last attested"), rows))
    return 0


def _vnfs_add(args: argparse.Namespace) -> int:
    doc = _client(args).add_vnf(args.host, args.vnf, enroll_rule=args.enroll_rule, mrenclave=args.mrenclave)
    emit(args, doc, f"registered VNF {doc['vnf']} on host {doc['host']} (enroll rule {doc['enroll_rule']})")
    return 0


def _vnfs_release(args: argparse.Namespace) -> int:
    doc = _client(args).release_vnf(args.host, args.vnf, reason=args.reason)
    emit(
        args,
        doc,
        f"released VNF {doc['vnf']} on host {doc['host']} from its enclave; "
        f"revoked {len(doc['revoked_serials'])} certificate(s)",
    )
    return 0


def _vnfs_remove(args: argparse.Namespace) -> int:
    doc = _client(args).remove_vnf(args.host, args.vnf, reason=args.reason)
    emit(
        args,
        doc,
        f"removed VNF {doc['vnf']} on host {doc['host']}; revoked {len(doc['revoked_serials'])} certificate(s)",
    )
    return 0


def _enrollments_list(args: argparse.Namespace) -> int:
    items = _client(args).enrollments()
    rows = [(e["id"], e["host"], e["vnf"], e["serial"][:16], e["key_mode"], e["status"], e["not_after"]) for e in items]
    emit(args, items, lambda: table(("id", "host", "vnf", "serial", "key mode", "status", "not after"), rows))
    return 0


def _attest(args: argparse.Namespace) -> int:
    doc = _client(args).attest(args.host)
    head = f"host {doc['host']}: {'TRUSTED' if doc['trusted'] else 'NOT TRUSTED'} (policy {str(doc['policy_version'])[:12]}, audit #{doc['audit_id']})"
    if doc["simulated"]:
        head += "\n  WARNING: SIMULATED SGX evidence"
    emit(args, doc, head + ("\n" + _reasons_text(doc) if doc["reasons"] else ""))
    return 0 if doc["trusted"] else int(ExitCode.DENIED)


def _enroll(args: argparse.Namespace) -> int:
    doc = _client(args).enroll(args.host, args.vnf, args.key_mode)
    if doc["allowed"]:
        text = f"{doc['vnf']} on {doc['host']}: ENROLLED, certificate serial {doc['serial']} until {doc['not_after']} ({doc['key_mode']} key)"
        if doc["reasons"]:  # notes only (an allowed enrollment has no deny-level reason)
            text += "\n" + _reasons_text(doc)
    else:
        text = f"{doc['vnf']} on {doc['host']}: REFUSED (audit #{doc['audit_id']})\n" + _reasons_text(doc)
    if doc["simulated"]:
        text += "\n  WARNING: SIMULATED SGX evidence"
    emit(args, doc, text)
    return 0 if doc["allowed"] else int(ExitCode.DENIED)


def _revoke(args: argparse.Namespace) -> int:
    client = _client(args)
    is_host = args.host_flag or any(h["name"] == args.target for h in client.hosts())
    doc = client.revoke(reason=args.reason, host=args.target if is_host else None, vnf=None if is_host else args.target)
    kind = "host" if is_host else "VNF"
    emit(args, doc, f"revoked {len(doc['revoked_serials'])} certificate(s) of {kind} {args.target}")
    return 0


def _round_text(doc: dict[str, Any]) -> str:
    lines = [f"re-attestation round {doc['round']} ({doc['seconds']:.3f} s)"]
    if not doc["hosts"]:
        lines.append("  no trusted host to re-attest")
    for h in doc["hosts"]:
        head = f"  {h['host']}: {'TRUSTED' if h['trusted'] else 'NOT TRUSTED'} ({h['ima_entries']} IMA entries)"
        lines.append(head)
        if h["reasons"]:
            lines.append(_reasons_text(h, "    "))
        lines += [f"    renewed {vnf}: serial {serial}" for vnf, serial in sorted(h["renewed"].items())]
        lines += [f"    attested {vnf}: keeps serial {serial}" for vnf, serial in sorted(h.get("kept", {}).items())]
        for vnf, reasons in sorted(h["refused"].items()):
            lines.append(f"    REFUSED {vnf}: " + "; ".join(r["message"] for r in reasons if not _is_note(r)))
        lines += [f"    renewal of {vnf} failed: {why}" for vnf, why in sorted(h["failed"].items())]
        if h["revoked_serials"]:
            lines.append(f"    REVOKED {len(h['revoked_serials'])} certificate(s): {', '.join(h['revoked_serials'])}")
    return "\n".join(lines)


def _reattest(args: argparse.Namespace) -> int:
    doc = _client(args).reattest(args.host)
    emit(args, doc, _round_text(doc))
    ok = all(h["trusted"] and not h["refused"] for h in doc["hosts"])
    return 0 if ok else int(ExitCode.DENIED)


def _reload_policy(args: argparse.Namespace) -> int:
    doc = _client(args).reload_policy(dry_run=args.dry_run)
    lines = [
        f"policy {str(doc['old_policy_version'])[:12]} -> {doc['new_policy_version'][:12]}"
        + (" (dry run: nothing changed)" if doc["dry_run"] else " (applied)")
    ]
    for h in doc["hosts"]:
        lines.append(f"  host {h['host']}: {'trusted' if h['trusted'] else 'NOT TRUSTED'}")
        lines += [_reason_line(r, "    ") for r in h["reasons"] if not h["trusted"] and not _is_note(r)]
    for v in doc["vnfs"]:
        lines.append(f"  {v['vnf']} on {v['host']}: {'admitted' if v['allowed'] else 'NOT ADMITTED'}")
        lines += [_reason_line(r, "    ") for r in v["reasons"] if not v["allowed"] and not _is_note(r)]
    verb = "would revoke" if doc["dry_run"] else "revoked"
    if not doc["revocations"]:
        lines.append("nothing to revoke")
    for r in doc["revocations"]:
        what = f"VNF {r['vnf']} on {r['host']}" if r["vnf"] else f"every VNF on host {r['host']}"
        lines.append(f"{verb} {len(r['serials'])} certificate(s) of {what}: {r['why']}")
    emit(args, doc, "\n".join(lines))
    return 0


def audit_reasons_cell(reasons: list[dict[str, Any]], width: int = 100) -> str:
    """The audit table's reasons: denials first, notes last (a long note must never hide a
    denial), cut to ``width`` with the number of reasons left out."""
    ordered = sorted(reasons, key=_is_note)  # stable: each level keeps its order
    text = "; ".join(("note: " if _is_note(x) else "") + x["message"] for x in ordered)
    if len(text) <= width:
        return text
    return text[: width - 3] + f"... ({len(reasons)} reasons, --json for all)"


def _audit(args: argparse.Namespace) -> int:
    if args.since:
        clock.parse_time(args.since, what="--since")
    records = _client(args).audit(args.since)
    rows = [
        (
            r["id"],
            r["at"],
            r["actor"],
            r["action"],
            r["host"] or "",
            r["vnf"] or "",
            "allowed" if r["allowed"] else "DENIED",
            audit_reasons_cell(r["reasons"]),
        )
        for r in records
    ]
    emit(args, records, lambda: table(("id", "at", "actor", "action", "host", "vnf", "verdict", "reasons"), rows))
    return 0


def _add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vm-url", help="the VM's HTTPS API (default https://localhost:<vm.port>)")
    p.add_argument("--admin-cert", help="admin client certificate (default <state>/admin/admin.pem)")
    p.add_argument("--admin-key", help="its key (default: the certificate path with .key)")
    p.add_argument("--vm-certificate", help="the VM's pinned TLS certificate (default <state>/vm-tls/server.pem)")
    add_json(p)


_WHY = "why (recorded in the audit log)"
_WHY_REVOKED = "why (recorded in the audit log and the revocations)"


def _add_audited(
    verbs: Any, verb: str, what: str, func: Any, names: tuple[tuple[str, str], ...], why: str
) -> None:
    """A command that changes what the VM holds for a reason its audit log keeps: positional
    ``names`` (argument, help), a required ``--reason`` and the client options."""
    p: argparse.ArgumentParser = verbs.add_parser(verb, help=what)
    for arg, text in names:
        p.add_argument(arg, help=text)
    p.add_argument("--reason", required=True, help=why)
    _add_client_options(p)
    p.set_defaults(func=func)


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)

    p = sub.add_parser("serve", help="run the Verification Manager (HTTPS API, CRL and OCSP)")
    p.add_argument("--policy", help="policy file (default: vm.policy); reload-policy reads it again")
    p.add_argument(
        "--reattest-interval",
        type=float,
        metavar="SECONDS",
        help="re-attest every trusted host this often (default vm.reattest_interval_seconds; 0 = off)",
    )
    p.set_defaults(func=_serve, progress=False)  # a service: no progress line

    p = sub.add_parser(
        "migrate",
        help="apply the state database's pending schema migrations (storage.url; `vm serve` does it at start too)",
    )
    add_json(p)
    p.set_defaults(func=_migrate)

    p = sub.add_parser(
        "admin-cert", help="issue an admin client certificate from the VM's admin CA (local; never a VNF credential)"
    )
    p.add_argument("name", help="admin name (default file names use it; e.g. admin)")
    p.add_argument("--out", help="output directory (default <state>/admin)")
    p.add_argument("--days", type=int, default=30, metavar="N", help="lifetime in days (default 30, at most 365)")
    add_json(p)
    p.set_defaults(func=_admin_cert)

    for noun, fn, what in (
        ("hosts", _hosts_list, "container hosts"),
        ("vnfs", _vnfs_list, "VNF enclaves"),
        ("enrollments", _enrollments_list, "enrollments and their certificates"),
    ):
        group = sub.add_parser(noun, help=f"{what}")
        group.set_defaults(group_parser=group)
        verbs = group.add_subparsers(dest="verb", metavar="COMMAND")
        lp = verbs.add_parser("list", help=f"list {what}")
        _add_client_options(lp)
        lp.set_defaults(func=fn)
        if noun == "hosts":
            ap = verbs.add_parser("add", help="register a container host and its agent URL")
            ap.add_argument("name", help="the host's name (as VNFs and the audit log name it)")
            ap.add_argument("--agent", required=True, metavar="URL", help="the host agent's URL")
            ap.add_argument("--host-policy", help="host policy that judges it (default: the policy's only one)")
            ap.add_argument(
                "--agent-cert", metavar="PEM", help="pin the agent's TLS certificate (or its CA) for an https agent URL"
            )
            ap.add_argument(
                "--replace",
                action="store_true",
                help="change the agent URL/policy/pin of a host already registered (else refused)",
            )
            _add_client_options(ap)
            ap.set_defaults(func=_hosts_add)
            tp = verbs.add_parser(
                "tpm-register",
                help="register a host's TPM: EK trust, AK proven resident (ActivateCredential), AK pinned",
            )
            tp.add_argument("name", help="a registered host")
            _add_client_options(tp)
            tp.set_defaults(func=_hosts_tpm_register)
            for verb, fn, what, why in (
                ("remove", _hosts_remove, "unregister a host; every certificate issued to it or on its platform "
                 "is revoked", _WHY_REVOKED),
                ("repin", _hosts_repin, "let the host's next trusted quote pin another platform (after a PCK "
                 "re-issue; audited)", _WHY),
            ):  # fmt: skip
                _add_audited(verbs, verb, what, fn, (("name", "the registered host"),), why)
        if noun == "vnfs":
            ap = verbs.add_parser("add", help="register a VNF identity: host, VNF name, enroll rule")
            ap.add_argument("host", help="the registered host it runs on")
            ap.add_argument("vnf", help="the VNF name (its certificate's identity)")
            ap.add_argument(
                "--enroll-rule", help="the policy's enroll rule for it (default: the rule matching the name)"
            )
            ap.add_argument("--mrenclave", metavar="HEX", help="only an enclave with this MRENCLAVE may hold the name")
            _add_client_options(ap)
            ap.set_defaults(func=_vnfs_add)
            for verb, fn, what in (
                ("release", _vnfs_release, "free the name from its bound enclave (its certificates are revoked)"),
                ("remove", _vnfs_remove, "unregister a VNF (its certificates are revoked)"),
            ):
                names = (("host", "the host it is registered on"), ("vnf", "the VNF name"))
                _add_audited(verbs, verb, what, fn, names, _WHY_REVOKED)

    p = sub.add_parser("attest", help="attest a container host now (IMA list + integrity enclave quote)")
    p.add_argument("host", help="a registered host's name")
    _add_client_options(p)
    p.set_defaults(func=_attest)

    p = sub.add_parser("enroll", help="attest a VNF enclave on a host and provision its certificate")
    p.add_argument("host", help="the registered host the VNF runs on")
    p.add_argument("vnf", help="the VNF to attest and enroll")
    p.add_argument("--key-mode", choices=("enclave", "vm-generated"), help="default: vm.key_mode")
    _add_client_options(p)
    p.set_defaults(func=_enroll)

    p = sub.add_parser("revoke", help="revoke a VNF's certificates, or those of every VNF on a host")
    p.add_argument("target", metavar="VNF|HOST", help="a VNF's name, or a host's with --host")
    p.add_argument("--reason", required=True, help=_WHY)
    p.add_argument("--host", dest="host_flag", action="store_true", help="TARGET is a host (else looked up)")
    _add_client_options(p)
    p.set_defaults(func=_revoke)

    p = sub.add_parser(
        "reattest", help="run one re-attestation round now (renew certificates, revoke on untrusted hosts)"
    )
    p.add_argument("host", nargs="?", help="only this host (default: every trusted host)")
    _add_client_options(p)
    p.set_defaults(func=_reattest)

    p = sub.add_parser(
        "reload-policy", help="load the policy file again, re-evaluate every enrollment, revoke what fails"
    )
    p.add_argument("--dry-run", action="store_true", help="only show what would be revoked and why")
    _add_client_options(p)
    p.set_defaults(func=_reload_policy)

    p = sub.add_parser("audit", help="show audit records (every decision and its reasons)")
    p.add_argument("--since", help="only records at or after this time (ISO 8601)")
    _add_client_options(p)
    p.set_defaults(func=_audit)
