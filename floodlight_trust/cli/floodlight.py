"""`ftrust floodlight`: provision Floodlight's keystore and properties, show status, check a URL."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from floodlight_trust import clock, fileio
from floodlight_trust.cli.output import add_group, add_json, emit, load_config, port_number, table
from floodlight_trust.config import Config
from floodlight_trust.errors import InputError, Location, ParseError, VerificationError
from floodlight_trust.floodlight import bridge, client, plugin
from floodlight_trust.floodlight.keystore import FloodlightKeystore
from floodlight_trust.floodlight.properties import (
    PREFIX,
    PropertiesFile,
    configure_rest_https,
    rest_settings,
)
from floodlight_trust.pki.ca import load_ca_certificate
from floodlight_trust.pki.grants import REST_GRANTS_OID, RestGrant, allowed, decode_grants
from floodlight_trust.secrets import Secret, load_secret

RESTART = "Floodlight loads its keystore and trust only at startup: restart the controller now."
STARTED = "After the restart, check that HTTPS is really up by connecting (a failed start can leave the JVM running without the REST port): `ftrust floodlight export-cert --out server.pem`, then `ftrust floodlight check URL --cert C --key K --ca server.pem`."


def _keystore_path(args: argparse.Namespace, cfg: Config) -> Path:
    value = getattr(args, "keystore", None)
    path = Path(value) if value else cfg.path("floodlight", "keystore")
    if path is None:
        raise InputError("no keystore given", hint="use --keystore FILE or set floodlight.keystore in the config")
    return path


def _store_password(cfg: Config) -> Secret:
    return cfg.secret("floodlight", what="keystore password")


def _store_type(args: argparse.Namespace, cfg: Config) -> str:
    return str(getattr(args, "type", None) or cfg.get("floodlight", "keystore_type"))


def _entries_table(store: FloodlightKeystore) -> str:
    return table(
        ("alias", "kind", "subject", "not after", "sha256"),
        [(e.alias, e.kind, e.subject, clock.format_time(e.not_after), e.sha256[:16] + "...") for e in store.entries()],
    )


# -- provision / status / check ------------------------------------------------------------------


def _provision(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    props_path = Path(args.properties) if args.properties else cfg.path("floodlight", "properties")
    if props_path is None:
        raise InputError("no properties file given", hint="use --properties FILE or set floodlight.properties")
    keystore = _keystore_path(args, cfg).resolve()
    password = _store_password(cfg)
    store_type = _store_type(args, cfg)
    props = PropertiesFile.load(props_path)
    # The CA certificate alone is all the Floodlight host needs (never the CA's key or state).
    ca_cert = _read_cert(args.ca_cert) if args.ca_cert else load_ca_certificate(cfg.state_path("ca", "dir"))
    alias = cfg.get("floodlight", "ca_alias")
    if keystore.exists():
        store = FloodlightKeystore.load(keystore, password, store_type)
    else:
        store = FloodlightKeystore.new(password, store_type)
    _refuse_ca_replacement(store, alias, ca_cert, keystore)
    rotated = store.rotate_ca(alias, ca_cert)
    created = store.ensure_server_key(
        args.server_alias, args.server_subject, args.server_san or ["localhost", "127.0.0.1"], at=clock.now()
    )
    backup = store.save(keystore)
    changed = configure_rest_https(
        props, keystore_path=keystore, password=password, https_port=args.https_port, keep_http=args.keep_http
    )
    props_backup = props.save() if changed else None
    java_view: dict[str, Any] | None = None
    if not args.no_java_check and shutil.which("java"):
        java_view = bridge.keystore_probe(keystore, password, "JKS")
        if not java_view.get("ok"):
            raise VerificationError(
                f"Java cannot load the keystore written: {java_view.get('error')}", location=Location(str(keystore))
            )
    installed = _install_plugin(args, cfg, props, ca_cert) if args.floodlight_home else None
    flags = bridge.revocation_jvm_flags()
    security: Path | None = None
    if args.revocation == "ocsp":
        # OCSP is a security property, not a system property: it needs a file named by a flag.
        security = keystore.parent / "ftrust-ocsp.security"
        if not security.exists() or security.read_text(errors="replace") != bridge.OCSP_SECURITY_PROPERTIES:
            fileio.atomic_write(security, bridge.OCSP_SECURITY_PROPERTIES, mode=0o644)
        flags += bridge.ocsp_jvm_flags(security)
    command = bridge.floodlight_command(flags, props_path.resolve())
    data = {
        "keystore": str(keystore),
        "keystore_backup": str(backup) if backup else None,
        "ca_alias": alias,
        "previous_ca_kept_as": rotated,
        "server_key_created": created,
        "properties": str(props_path),
        "properties_changed": changed,
        "properties_backup": str(props_backup) if props_backup else None,
        "java_check": java_view.get("ok") if java_view else None,
        "jvm_flags": flags,
        "revocation": args.revocation,
        "security_properties": str(security) if security else None,
        "restart_command": command,
        "restart_required": True,
        "plugin": installed.to_json() if installed else None,
    }

    def text() -> str:
        lines = [
            f"keystore {keystore}: CA trusted as {alias!r}" + (f" (previous CA kept as {rotated!r})" if rotated else "")
        ]
        lines.append(f"  server key {args.server_alias!r}: {'created' if created else 'already present'}")
        if backup:
            lines.append(f"  backup of the previous keystore: {backup}")
        if java_view:
            lines.append("  Java loads it as Floodlight will: ok")
        lines.append(f"properties {props_path}: " + (", ".join(changed) if changed else "already set"))
        lines.append("  (the keystore password is in this file; Floodlight also logs it at INFO: protect both)")
        if installed:
            lines += _plugin_lines(installed)
        elif security is not None:
            lines.append(
                f"start Floodlight with these flags (recommended): OCSP on every handshake ({security}),"
                " the CA's CRL as the fallback:"
            )
        else:
            lines.append("start Floodlight with these flags to check client certificates against the CA's CRL only:")
        if not installed:
            lines.append("  " + command)
            lines.append("  (from Floodlight's directory; on JDK 11+ add a JAXB API jar, see docs/floodlight.md)")
        lines.append(RESTART)
        lines.append(STARTED)
        return "\n".join(lines)

    emit(args, data, text)
    return 0


def _refuse_ca_replacement(store: FloodlightKeystore, alias: str, ca_cert: Any, keystore: Path) -> None:
    """provision never changes which CA the keystore trusts under ``alias``: putting back a CA that
    `keystore rotate-ca` replaced (or that was removed after the overlap) would make the controller
    accept the retired CA's certificates again. A rotation is done on purpose with rotate-ca."""
    if alias.lower() not in store.aliases():
        return
    current = store.certificate(alias)
    if current == ca_cert:
        return
    undone = store.rotated_out(alias, ca_cert)
    what = (
        f"provision would put back the CA it replaced (kept as {undone!r})"
        if undone
        else f"provision would replace it with {ca_cert.subject.rfc4514_string()}"
    )
    raise InputError(
        f"the keystore trusts another CA under {alias!r} ({current.subject.rfc4514_string()}, sha256"
        f" {_sha256(current)[:16]}...); {what}",
        location=Location(str(keystore)),
        hint="give the CA in force with --ca-cert FILE; to change CA on purpose use `ftrust floodlight keystore"
        " rotate-ca` (it keeps the old one for the overlap)",
    )


def _sha256(cert: Any) -> str:
    from cryptography.hazmat.primitives import hashes

    return bytes(cert.fingerprint(hashes.SHA256())).hex()


def _status(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    props_path = Path(args.properties) if args.properties else cfg.path("floodlight", "properties")
    if props_path is None:
        raise InputError("no properties file given", hint="use --properties FILE or set floodlight.properties")
    props = PropertiesFile.load(props_path)
    settings = rest_settings(props)
    problems: list[str] = []
    entries: list[dict[str, Any]] = []
    java_view: dict[str, Any] | None = None
    problems += settings.startup_failures()
    if not settings.use_https:
        problems.append("HTTPS is off (useHttps not true or keyStorePath empty): the REST API is not protected")
    elif not settings.need_client_auth:
        problems.append("httpsNeedClientAuthentication is not YES: no client certificate is requested at all")
    if settings.use_http:
        problems.append(f"plain HTTP is on (port {settings.http_port}): anyone can use the REST API there")
    if settings.use_https and settings.keystore_path and settings.keystore_password is not None:
        ks_path = Path(settings.keystore_path)
        if not ks_path.is_absolute():
            problems.append("keyStorePath is relative: Floodlight resolves it against its working directory")
        # Exactly what Floodlight does: the password from the properties, for store, keys and trust.
        store = FloodlightKeystore.load(ks_path, settings.keystore_password, "JKS")
        problems += store.problems()
        entries = [e.to_json() for e in store.entries()]
        if not args.no_java_check and shutil.which("java"):
            java_view = bridge.keystore_probe(ks_path, settings.keystore_password, "JKS")
            if not java_view.get("ok"):
                problems.append(
                    f"Java fails to load it ({java_view.get('stage')}): {java_view.get('error')}"
                    " (Floodlight 1.2 would exit with code 1 at startup)"
                )
    plug = plugin.status(props)
    problems += [f"plugin: {p}" for p in plug.problems]
    data = {"properties": str(props_path), "settings": settings.to_json(), "entries": entries,
            "java_ok": java_view.get("ok") if java_view else None, "plugin": plug.to_json(),
            "problems": problems}  # fmt: skip

    def text() -> str:
        s = settings

        def port(value: str | None) -> str:
            return f"on, port {value}" if value is not None else "on, NO PORT (Floodlight fails to start)"

        lines = [
            f"properties: {props_path}",
            f"  HTTPS: {port(s.https_port) if s.use_https else 'off'}"
            f"; client certificates: {'required' if s.need_client_auth else 'not requested'}"
            f"; plain HTTP: {port(s.http_port) if s.use_http else 'off'}",
        ]
        if s.host is not None:
            lines.append(f"  listens on: {s.host} (from {s.host_key})")
        if s.keystore_path:
            lines.append(f"  keystore: {s.keystore_path}")
        if entries:
            lines.append(table(("alias", "kind", "subject", "not after"),
                               [(e["alias"], e["kind"], e["subject"], e["not_after"]) for e in entries]))  # fmt: skip
        if java_view is not None:
            lines.append(
                "Java: "
                + ("loads it as Floodlight will" if java_view.get("ok") else "FAILS: " + str(java_view.get("error")))
            )
        lines += _plugin_status_lines(plug)
        lines += [f"problem: {p}" for p in problems] or ["no problems found"]
        return "\n".join(lines)

    emit(args, data, text)
    return 1 if problems else 0


def _check(args: argparse.Namespace) -> int:
    result = client.check(args.url, args.cert, args.key, args.ca, path=args.path, timeout=args.timeout)
    grants = _certificate_grants(args.cert) if args.cert else None
    honoured: dict[str, Any] | None = None
    if args.grants and grants is None:
        raise InputError("--grants needs a VNF certificate with REST grants (--cert)")
    if args.grants and grants is not None and result.accepted:
        expected = "allowed" if allowed(grants, "GET", args.path) else "refused"
        seen = "refused" if result.status == 403 else "allowed"
        honoured = {"method": "GET", "path": args.path, "expected": expected, "seen": seen, "status": result.status,
                    "honoured": expected == seen}  # fmt: skip

    def text() -> str:
        requested = {True: "yes", False: "no", None: "unknown"}[result.client_cert_requested]
        lines = [
            f"{result.url}{args.path}",
            f"  TLS: {result.tls_version or 'handshake failed'}; server certificate "
            + ("verified" if result.server_verified else "NOT verified (no --ca)"),
            f"  client certificate requested: {requested}; sent: {'yes' if result.client_cert_sent else 'no'}",
        ]
        if result.accepted:
            lines.append(f"  accepted: HTTP {result.status} {result.body}")
        else:
            lines.append(f"  refused: {result.reason}")
        if grants is not None:
            lines.append(
                "  REST grants in the certificate: " + (", ".join(map(str, grants)) or "none (no REST access)")
            )
        if honoured is not None:
            lines.append(
                f"  the controller {'honours' if honoured['honoured'] else 'does NOT honour'} them: GET {args.path} "
                f"should be {honoured['expected']}, was {honoured['seen']} (HTTP {honoured['status']})"
            )
        return "\n".join(lines)

    doc = result.to_json()
    doc["grants"] = [g.to_json() for g in grants] if grants is not None else None
    doc["grants_honoured"] = honoured
    emit(args, doc, text)
    if honoured is not None and not honoured["honoured"]:
        return 1
    if honoured is not None and honoured["expected"] == "refused":
        return 0  # refused as the grants say
    return 0 if result.accepted and result.status == 200 else 1


# -- the plugin (issue 17) -----------------------------------------------------------------------

CONTROLLER_KEY_PASSWORD_ENV = "FTRUST_CONTROLLER_KEY_PASSWORD"  # noqa: S105 (a variable name)


def _install_plugin(args: argparse.Namespace, cfg: Config, props: PropertiesFile, ca_cert: Any) -> plugin.PluginInstall:
    from cryptography.hazmat.primitives import serialization

    from floodlight_trust import fileio

    home = Path(args.floodlight_home).resolve()
    mode = plugin.RevocationMode(args.revocation_mode)
    state = cfg.state_dir
    vm_url = args.vm_url or f"https://{cfg.get('vm', 'host')}:{cfg.get('vm', 'port')}"
    vm_cert = Path(args.vm_certificate) if args.vm_certificate else state / "vm-tls" / "server.pem"
    credential = (
        Path(args.controller_credential) if args.controller_credential else state / "controller" / "floodlight.p12"
    )
    stream = mode is plugin.RevocationMode.STREAM
    for what, path in (("VM certificate", vm_cert), ("controller credential", credential)):
        if stream and not path.is_file():
            raise InputError(
                f"{what} not found", location=Location(str(path)),
                hint="--vm-certificate PEM (the VM's TLS certificate) and --controller-credential P12 "
                "(`ftrust floodlight controller-cert NAME` on the VM host)",
            )  # fmt: skip
    bundle = (
        fileio.read_bytes(args.trust_bundle, what="trust bundle")
        if args.trust_bundle
        else ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    password = load_secret(env=CONTROLLER_KEY_PASSWORD_ENV, what="controller credential password") if stream else None
    assert props.path is not None
    directory = Path(args.plugin_dir).resolve() if args.plugin_dir else props.path.resolve().parent / "ftrust-plugin"
    java = shutil.which("java") or "java"
    jars = [bridge.build_jar(), bridge.build_floodlight_module(home)]
    return plugin.install(
        floodlight_home=home, properties=props, directory=directory, jars=jars, bundle_pem=bundle, mode=mode,
        vm_url=vm_url if stream else None, vm_certificate=vm_cert if stream else None,
        controller_p12=credential if stream else None, controller_password=password,
        staleness_seconds=args.staleness, slot=bridge.provider_slot(java), java=java,
        extra_classpath=[Path(p) for p in args.extra_classpath or []],
    )  # fmt: skip


def _plugin_lines(installed: plugin.PluginInstall) -> list[str]:
    return [
        f"plugin installed in {installed.directory}:",
        "  jars: " + ", ".join(str(j) for j in installed.jars),
        f"  trust provider configuration: {installed.config}",
        f"  logging configuration (RestApiServer at WARN: the keystore password stays out of the log): {installed.logback}",
        "  properties: " + (", ".join(installed.properties_changed) or "already set"),
        "start Floodlight with exactly this command (no secret in it):",
        "  " + plugin.shell_line(installed.command),
    ]


def _plugin_status_lines(plug: plugin.PluginStatus) -> list[str]:
    if not plug.module_listed:
        return ["plugin: not configured (trust loaded at startup only, revocation at handshakes, no REST grants)"]
    c = plug.config
    lines = [f"plugin: {plugin.MODULE_CLASS} listed; trust provider configuration {plug.config_path or '(unset)'}"]
    if c is not None:
        follows = (
            f"follows the VM at {c.vm_url} (revocation stream"
            if c.mode is plugin.RevocationMode.STREAM
            else "asks OCSP ("
        )
        lines.append(f"  {follows}, fail closed past {c.staleness_seconds:g} s); trust bundle {c.trust_bundle}")
        lines += [f"  trusted CA: {s}" for s in plug.bundle_subjects]
    return lines


def _certificate_grants(path: str) -> tuple[RestGrant, ...] | None:
    """The REST grants of a VNF certificate (None: not a VNF certificate of this project)."""
    from cryptography import x509

    cert = _read_cert(path)
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(REST_GRANTS_OID))
    except x509.ExtensionNotFound:
        return None
    try:
        return decode_grants(ext.value.value)
    except ParseError as e:
        raise InputError(f"the certificate's REST grants are malformed: {e}", location=Location(path)) from None


def _controller_cert(args: argparse.Namespace) -> int:
    from floodlight_trust.manager.revocation_feed import issue_controller_credential
    from floodlight_trust.statestore import open_ca, open_state

    config = load_config(args)
    password = load_secret(env=CONTROLLER_KEY_PASSWORD_ENV, what="controller credential password")
    if len(password.reveal()) < 8:
        raise InputError(f"the controller credential password from {password.source} is shorter than 8 characters")
    ca = open_ca(config, config.secret("ca", what="CA key password"), open_state(config))
    out = Path(args.out) if args.out else config.state_dir / "controller"
    p12, cert = issue_controller_credential(ca, args.name, out, at=clock.now(), password=password)
    emit(
        args,
        {"credential": str(p12), "certificate": str(cert)},
        f"controller credential {p12} (PKCS#12, password from {password.source})\ncertificate           {cert}\n"
        "copy both to the Floodlight host; `ftrust floodlight provision --floodlight-home DIR --controller-credential P12`",
    )
    return 0


# -- keystore sub-commands -----------------------------------------------------------------------


def _ks_load(args: argparse.Namespace, cfg: Config) -> FloodlightKeystore:
    return FloodlightKeystore.load(_keystore_path(args, cfg), _store_password(cfg), _store_type(args, cfg))


def _ks_list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    store = _ks_load(args, cfg)
    problems = store.problems()
    emit(
        args,
        {"entries": [e.to_json() for e in store.entries()], "problems": problems},
        lambda: "\n".join([_entries_table(store), *[f"problem: {p}" for p in problems]]),
    )
    return 1 if problems else 0


def _read_cert(path: str) -> Any:
    from cryptography import x509

    from floodlight_trust import fileio

    data = fileio.read_bytes(path, what="certificate")
    try:
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise InputError(f"not a certificate: {e}", location=Location(path)) from None


def _ks_change(args: argparse.Namespace, what: str) -> int:
    cfg = load_config(args)
    store = _ks_load(args, cfg)
    note = ""
    if what == "add-ca":
        if not store.add_trusted_ca(args.alias, _read_cert(args.cert)):
            note = "already present; "
    elif what == "rotate-ca":
        kept = store.rotate_ca(args.alias, _read_cert(args.cert))
        note = f"previous CA kept as {kept!r} for the overlap; " if kept else ""
    elif what == "remove":
        store.remove(args.alias)
    props: PropertiesFile | None = None
    if what == "change-password":
        new = load_secret(env=args.new_password_env, file=args.new_password_file, what="new keystore password")
        props = _properties_for_password_change(args, cfg, store)
        store.change_password(new)
    backup = store.save()
    props_backup: Path | None = None
    if props is not None:
        # Both files were checked writable before the keystore was written; should this write
        # still fail, the error names the file and the keystore's backup matches the old properties.
        props.set(PREFIX + "keyStorePassword", new.reveal())
        props_backup = props.save()
        note = f"keyStorePassword updated in {props.path}; "
    emit(
        args,
        {
            "keystore": str(store.path),
            "backup": str(backup) if backup else None,
            "entries": [e.to_json() for e in store.entries()],
            "properties": str(props.path) if props is not None else None,
            "properties_backup": str(props_backup) if props_backup else None,
        },
        f"{what}: {note}saved {store.path}"
        + (f" (backup {backup})" if backup else "")
        + f"\n{RESTART}"
        + (
            "\nftrust itself reads the keystore password from floodlight.password_env / password_file:"
            " give it the new one there."
            if what == "change-password"
            else ""
        ),
    )
    return 0


def _properties_for_password_change(
    args: argparse.Namespace, cfg: Config, store: FloodlightKeystore
) -> PropertiesFile | None:
    """The properties file whose keyStorePassword must change with the keystore's, checked to name
    this keystore; refuses (before anything is written) when it is unknown or names another."""
    if args.keystore_only:
        return None
    path = Path(args.properties) if args.properties else cfg.path("floodlight", "properties")
    if path is None:
        raise InputError(
            "Floodlight's properties hold the keystore password too, and no properties file is given:"
            " changing only the keystore would stop Floodlight from loading it",
            location=Location(str(store.path)),
            hint="use --properties FILE (or set floodlight.properties), or --keystore-only if no Floodlight uses it",
        )
    props = PropertiesFile.load(path)
    named = props.get(PREFIX + "keyStorePath")
    if not named or store.path is None or Path(named).resolve() != store.path.resolve():
        raise InputError(
            f"keyStorePath there is {named!r}, not this keystore ({store.path}): refusing to change a password"
            " Floodlight would not use",
            location=Location(str(path), props.line_of(PREFIX + "keyStorePath")),
        )
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        raise InputError("properties file (or its directory) is not writable: refusing to change only the keystore",
                         location=Location(str(path)))  # fmt: skip
    return props


def _export_cert(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    cfg = load_config(args)
    store = _ks_load(args, cfg)
    cert = store.certificate(args.alias)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    if args.out and args.out != "-":
        fileio.atomic_write(args.out, pem, mode=0o644)
    entry = next(e for e in store.entries() if e.alias == args.alias.lower())
    data = {"alias": entry.alias, "subject": entry.subject, "sha256": entry.sha256,
            "not_after": clock.format_time(entry.not_after), "out": args.out if args.out != "-" else None}  # fmt: skip
    if args.out in (None, "-") and not args.json:
        sys.stdout.write(pem.decode())
        return 0
    if args.out in (None, "-"):
        data["pem"] = pem.decode()
    emit(args, data, f"wrote {args.alias!r} ({entry.subject}, sha256 {entry.sha256[:16]}...) to {args.out}")
    return 0


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)

    p = sub.add_parser("provision", help="trust the CA in Floodlight's keystore and enable HTTPS with client auth")
    p.add_argument("--properties", metavar="FILE", help="Floodlight properties file (default: floodlight.properties)")
    p.add_argument("--keystore", metavar="FILE", help="keystore to create or update (default: floodlight.keystore)")
    p.add_argument("--type", choices=("JKS", "PKCS12"), help="keystore type (default: floodlight.keystore_type)")
    p.add_argument("--server-alias", default="floodlight", help="alias of Floodlight's HTTPS key (default: floodlight)")
    p.add_argument("--server-subject", default="CN=floodlight", help="subject of a newly created server certificate")
    p.add_argument("--server-san", action="append", metavar="NAME_OR_IP", help="server certificate SAN (repeatable)")
    p.add_argument(
        "--ca-cert",
        metavar="PEM",
        help="the CA certificate to trust (default: the CA of the config's state dir); all the Floodlight host needs",
    )
    p.add_argument(
        "--https-port", type=port_number, default=8081, metavar="PORT", help="httpsPort to set (default 8081)"
    )
    p.add_argument(
        "--revocation",
        choices=("ocsp", "crl"),
        default="ocsp",
        help="flags to print: OCSP first with the CRL as fallback (recommended, default; writes"
        " ftrust-ocsp.security beside the keystore) or CRL only",
    )
    p.add_argument("--keep-http", action="store_true", help="leave plain HTTP (useHttp) as it is")
    p.add_argument("--no-java-check", action="store_true", help="do not load the result with the JDK")
    g = p.add_argument_group("the plugin (trust provider + REST enforcement module; docs/floodlight.md)")
    g.add_argument("--floodlight-home", metavar="DIR", help="install the plugin for the Floodlight 1.2 in DIR")
    g.add_argument(
        "--plugin-dir", metavar="DIR", help="where its files go (default: ftrust-plugin/ beside the properties)"
    )
    g.add_argument("--vm-url", metavar="URL", help="the VM's https URL (default from vm.host and vm.port)")
    g.add_argument(
        "--vm-certificate", metavar="PEM", help="the VM's TLS certificate (default <state>/vm-tls/server.pem)"
    )
    g.add_argument("--controller-credential", metavar="P12", help="from `floodlight controller-cert` (password: "
                   f"{CONTROLLER_KEY_PASSWORD_ENV}; default <state>/controller/floodlight.p12)")  # fmt: skip
    g.add_argument("--trust-bundle", metavar="PEM", help="the VM's issuing CA(s) (default: the CA certificate)")
    g.add_argument("--revocation-mode", choices=[m.value for m in plugin.RevocationMode], default="stream",
                   help="the trust provider follows the VM's revocation stream (default; OCSP past the bound)"
                   " or asks OCSP on every check")  # fmt: skip
    g.add_argument("--staleness", type=float, default=plugin.DEFAULT_STALENESS_SECONDS, metavar="SECONDS",
                   help="fail closed when the revocation knowledge is older (default 5)")  # fmt: skip
    g.add_argument("--extra-classpath", action="append", metavar="JAR", help="e.g. a JAXB API jar on JDK 11+")
    add_json(p)
    p.set_defaults(func=_provision)

    p = sub.add_parser("controller-cert", help="issue the controller's revocation-stream credential (on the VM host)")
    p.add_argument("name", help="the controller's name (SAN URI urn:ftrust:controller:NAME)")
    p.add_argument("--out", metavar="DIR", help="default <state>/controller")
    add_json(p)
    p.set_defaults(func=_controller_cert)

    p = sub.add_parser("status", help="what Floodlight will load with these properties, checked as Java would")
    p.add_argument("--properties", metavar="FILE", help="Floodlight properties file (default: floodlight.properties)")
    p.add_argument("--no-java-check", action="store_true", help="do not load the keystore with the JDK")
    add_json(p)
    p.set_defaults(func=_status)

    p = sub.add_parser("check", help="mutual-TLS GET of /wm/core/health/json: requested, accepted or refused")
    p.add_argument("url", help="e.g. https://127.0.0.1:8081")
    p.add_argument("--cert", metavar="PEM", help="client certificate (omit to test a connection without one)")
    p.add_argument("--key", metavar="PEM", help="client private key (unencrypted PEM)")
    p.add_argument("--ca", metavar="PEM", help="verify the server's certificate against this PEM")
    p.add_argument("--path", default=client.HEALTH_PATH, help="REST path to GET (default: %(default)s)")
    p.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="connect and read timeout (default 10)"
    )
    p.add_argument("--grants", action="store_true",
                   help="judge whether the controller honours the certificate's REST grants for GET --path "
                   "(403 exactly when not granted); exit 1 if not")  # fmt: skip
    add_json(p)
    p.set_defaults(func=_check)

    p = sub.add_parser(
        "export-cert", help="write the controller's HTTPS certificate (PEM), for clients to verify the controller"
    )
    p.add_argument("--keystore", metavar="FILE", help="default: floodlight.keystore")
    p.add_argument("--type", choices=("JKS", "PKCS12"), help="keystore type (default: floodlight.keystore_type)")
    p.add_argument("--alias", default="floodlight", help="the entry to export (default: floodlight, provision's key)")
    p.add_argument("--out", metavar="FILE", help="write here (default: standard output)")
    add_json(p)
    p.set_defaults(func=_export_cert)

    ks = sub.add_parser("keystore", help="list and change Floodlight's keystore")
    ks.set_defaults(group_parser=ks)
    kss = ks.add_subparsers(dest="keystore_command", metavar="COMMAND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--keystore", metavar="FILE", help="default: floodlight.keystore")
        q.add_argument("--type", choices=("JKS", "PKCS12"), help="keystore type (default: floodlight.keystore_type)")
        add_json(q)

    q = kss.add_parser("list", help="entries, and every reason Floodlight could not load the store")
    common(q)
    q.set_defaults(func=_ks_list)
    q = kss.add_parser("add-ca", help="trust a CA certificate")
    q.add_argument("alias", help="alias of the new trustedCertEntry")
    q.add_argument("cert", metavar="CERT", help="CA certificate (PEM or DER)")
    common(q)
    q.set_defaults(func=lambda a: _ks_change(a, "add-ca"))
    q = kss.add_parser("rotate-ca", help="replace a trusted CA, keeping the old one during the overlap")
    q.add_argument("alias", help="alias of the CA to replace (e.g. ftrust-ca)")
    q.add_argument("cert", metavar="CERT", help="the new CA certificate (PEM or DER)")
    common(q)
    q.set_defaults(func=lambda a: _ks_change(a, "rotate-ca"))
    q = kss.add_parser("remove", help="remove an entry")
    q.add_argument("alias", help="the entry to remove")
    common(q)
    q.set_defaults(func=lambda a: _ks_change(a, "remove"))
    q = kss.add_parser(
        "change-password", help="new password for the store and every key, and keyStorePassword in the properties"
    )
    q.add_argument(
        "--new-password-env",
        default="FTRUST_NEW_KEYSTORE_PASSWORD",
        metavar="VAR",
        help="environment variable holding the new password (default FTRUST_NEW_KEYSTORE_PASSWORD)",
    )
    q.add_argument("--new-password-file", metavar="FILE", help="read the new password from this file instead")
    q.add_argument(
        "--properties",
        metavar="FILE",
        help="Floodlight properties naming this keystore (default: floodlight.properties)",
    )
    q.add_argument("--keystore-only", action="store_true", help="change the keystore alone (no Floodlight loads it)")
    common(q)
    q.set_defaults(func=lambda a: _ks_change(a, "change-password"))
