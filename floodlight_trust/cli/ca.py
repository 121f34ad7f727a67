"""`ftrust ca`: create the CA, issue and revoke client certificates, publish CRLs, list records."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from floodlight_trust import clock, fileio, statestore
from floodlight_trust.cli.output import add_group, add_json, emit, load_config, positive_int, table
from floodlight_trust.config import Config
from floodlight_trust.errors import InputError, Location
from floodlight_trust.pki.ca import CertificateAuthority
from floodlight_trust.pki.crl import crl_der, crl_pem
from floodlight_trust.pki.keys import generate_private_key
from floodlight_trust.pki.profile import CertificateProfile, KeyType
from floodlight_trust.pki.records import REASONS, CertificateAuthorityKind, parse_serial, serial_hex
from floodlight_trust.secrets import load_secret
from floodlight_trust.storage.stores import Storage

KEY_PASSWORD_ENV = "FTRUST_KEY_PASSWORD"  # noqa: S105  (a variable name, not a password); encrypts the key `ca issue --generate-key` writes


def state_database(cfg: Config) -> Storage:
    """The deployment's one state store, the VM's too (statestore.py)."""
    return statestore.open_state(cfg)


def _vnf_ca(cfg: Config) -> CertificateAuthority:
    """The VNF CA on the one state store (the records the VM's CRL and OCSP answer from)."""
    return statestore.open_ca(cfg, cfg.secret("ca", what="CA key password"), state_database(cfg))


def _init(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    password = cfg.secret("ca", what="CA key password")
    ca = CertificateAuthority.init(
        cfg.state_path("ca", "dir"),
        password,
        key_type=args.key_type or cfg.get("ca", "key_type"),
        subject=args.subject or cfg.get("ca", "subject"),
        crl_url=cfg.get("ca", "crl_url"),
        ocsp_url=cfg.get("ca", "ocsp_url"),
        at=clock.now(),
    )
    # The admin CA beside it: admin client certificates only, never given to Floodlight.
    admin = statestore.open_admin_ca(cfg, password, state_database(cfg), create_at=clock.now())
    data = {
        "directory": str(ca.directory),
        "certificate": str(ca.cert_path),
        "key": str(ca.key_path),
        "subject": ca.certificate.subject.rfc4514_string(),
        "not_after": clock.format_time(ca.certificate.not_valid_after_utc),
        "admin_ca_certificate": str(admin.cert_path),
    }
    emit(
        args,
        data,
        f"created CA {data['subject']}\n  certificate: {data['certificate']}\n  key (encrypted, 0600): {data['key']}"
        f"\n  admin CA (admin client certificates only; never give it to Floodlight): {data['admin_ca_certificate']}",
    )
    return 0


def _load_public_key(path: str) -> Any:
    data = fileio.read_bytes(path, what="public key or CSR")
    loc = Location(path)
    if b"CERTIFICATE REQUEST" in data:
        try:
            csr = x509.load_pem_x509_csr(data)
        except ValueError as e:
            raise InputError(f"not a PEM CSR: {e}", location=loc) from None
        if not csr.is_signature_valid:
            raise InputError("the CSR's signature does not verify", location=loc)
        return csr.public_key()
    try:
        if data.lstrip().startswith(b"-----"):
            return serialization.load_pem_public_key(data)
        return serialization.load_der_public_key(data)
    except ValueError as e:
        raise InputError(f"not a public key (PEM/DER SubjectPublicKeyInfo) or CSR: {e}", location=loc) from None


def _issue(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if bool(args.public_key) == bool(args.generate_key):
        raise InputError("give exactly one of --public-key FILE or --generate-key KEY_OUT")
    profile = CertificateProfile(
        subject=args.subject,
        san_dns=tuple(args.san_dns or ()),
        san_uris=tuple(args.san_uri or ()),
        validity_seconds=args.validity if args.validity is not None else cfg.get("ca", "certificate_validity_seconds"),
        key_type=KeyType(args.key_type),
    )
    for out in (args.generate_key, args.out):
        # Checked before issuing: a recorded certificate whose key could not be written is useless.
        if out and not Path(out).resolve().parent.is_dir():
            raise InputError("output directory does not exist", location=Location(str(Path(out).parent)))
    key_password = None
    if args.generate_key and not args.unsafe_unencrypted_key:
        # Every key is encrypted at rest: the password is asked for before anything is issued.
        key_password = load_secret(env=KEY_PASSWORD_ENV, file=args.key_password_file, what="key password")
    ca = _vnf_ca(cfg)
    key_pem: bytes | None = None
    if args.generate_key:
        private = generate_private_key(profile.key_type)
        public_key: Any = private.public_key()
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(key_password.reveal_bytes())
            if key_password is not None
            else serialization.NoEncryption()
        )
        if key_password is None:
            print(f"ftrust: WARNING: {args.generate_key}: key written UNENCRYPTED (--unsafe-unencrypted-key)",
                  file=sys.stderr)  # fmt: skip
        key_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    else:
        public_key = _load_public_key(args.public_key)
    issued = ca.issue(public_key, profile, at=clock.now())
    if key_pem is not None:
        fileio.atomic_write(args.generate_key, key_pem, mode=0o600)
    if args.out:
        fileio.atomic_write(args.out, issued.pem, mode=0o644)
    data = issued.record.to_json()
    if args.out:
        data["certificate_file"] = args.out
    if args.generate_key:
        data["key_file"] = args.generate_key
    if not args.out and not args.json:
        sys.stdout.write(issued.pem.decode("ascii"))
        return 0
    emit(args, data, f"issued serial {data['serial']} to {data['subject']} (valid until {data['not_after']})")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    serial = parse_serial(args.serial)
    db = state_database(cfg)
    vnf_records = db.certificates(CertificateAuthorityKind.VNF)
    admin = vnf_records.get(serial) is None
    kind_of = CertificateAuthorityKind.ADMIN if admin else CertificateAuthorityKind.VNF
    if admin and db.certificates(kind_of).get(serial) is None:
        raise InputError(f"no certificate with serial {serial_hex(serial)}", hint="see `ftrust ca list` (--admin)")
    now = clock.now()
    with db.transaction() as tx:
        # One transaction: the certificate, its enrollment (so re-attestation does not renew it) and
        # the audit record. The VM's OCSP answers from these records and its CRL is re-signed when
        # they change, so a running VM refuses the certificate at once.
        record = tx.certificates(kind_of).revoke(serial, args.reason, now)
        enrollment = tx.enrollments.by_serial(serial_hex(serial))
        if enrollment is not None:
            tx.enrollments.mark_revoked(
                enrollment.serial, at=now, reason=f"ftrust ca revoke: {record.revocation_reason}"
            )
        tx.audit.record(
            at=now,
            actor="cli:ca revoke",
            action="revoke",
            allowed=True,
            host=enrollment.host if enrollment else None,
            vnf=enrollment.vnf if enrollment else None,
            evidence={"serials": [serial_hex(serial)], "crl_reason": record.revocation_reason,
                      "admin_certificate": admin},
        )  # fmt: skip
    kind = "admin certificate" if admin else "certificate"
    emit(
        args,
        record.to_json() | {"admin": admin},
        f"revoked {kind} {serial_hex(record.serial)} ({record.subject}) at "
        f"{clock.format_time(record.revoked_at or now)}, reason {record.revocation_reason}; a running VM's OCSP "
        "and CRL show it at once",
    )
    return 0


def _crl(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    ca = _vnf_ca(cfg)
    seconds = args.next_update or cfg.get("ca", "crl_next_update_seconds")
    crl = ca.crl(at=clock.now(), next_update=timedelta(seconds=seconds))
    if args.out:
        data = crl_pem(crl) if args.pem else crl_der(crl)
        fileio.atomic_write(args.out, data, mode=0o644)
        info = {
            "file": args.out,
            "format": "PEM" if args.pem else "DER",
            "revoked": len(list(crl)),
            "this_update": clock.format_time(crl.last_update_utc),
            "next_update": clock.format_time(crl.next_update_utc) if crl.next_update_utc else None,
        }
        emit(args, info, f"wrote CRL ({info['revoked']} revoked, next update {info['next_update']}) to {args.out}")
        return 0
    if not args.pem and sys.stdout.isatty():
        raise InputError("refusing to write a DER CRL to a terminal", hint="use --out FILE or --pem")
    if args.pem:
        sys.stdout.write(crl_pem(crl).decode("ascii"))
    else:
        sys.stdout.buffer.write(crl_der(crl))
    return 0


def _list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    records = state_database(cfg).certificates(
        CertificateAuthorityKind.ADMIN if args.admin else CertificateAuthorityKind.VNF
    )
    now = clock.now()
    rows = records.list(revoked=True if args.revoked else None)
    data = [r.to_json(now) for r in rows]
    emit(
        args,
        data,
        lambda: (
            table(
                ("serial", "subject", "status", "not after", "revoked at", "reason"),
                [
                    (d["serial"], d["subject"], d["status"], d["not_after"], d["revoked_at"], d["revocation_reason"])
                    for d in data
                ],
            )
            if data
            else "no certificates issued"
        ),
    )
    return 0


def register(subparsers: Any, name: str, help_text: str) -> None:
    sub = add_group(subparsers, name, help_text)

    p = sub.add_parser("init", help="create the CA key (encrypted, 0600) and self-signed certificate")
    p.add_argument("--key-type", choices=("ec-p256", "rsa-3072"), help="default: ca.key_type (ec-p256)")
    p.add_argument("--subject", help="RFC 4514 subject (default: ca.subject)")
    add_json(p)
    p.set_defaults(func=_init)

    p = sub.add_parser("issue", help="issue a TLS client certificate (clientAuth, CRL DP, OCSP AIA)")
    p.add_argument("--public-key", metavar="FILE", help="subject public key (PEM/DER) or a PEM CSR")
    p.add_argument(
        "--generate-key",
        metavar="KEY_OUT",
        help=f"generate the key pair here (written 0600, encrypted with the password in ${KEY_PASSWORD_ENV} "
        "or --key-password-file)",
    )
    p.add_argument("--key-password-file", metavar="FILE", help="a 0600 file holding the password for --generate-key")
    p.add_argument(
        "--unsafe-unencrypted-key",
        action="store_true",
        help="UNSAFE: write the --generate-key key without encryption (for tools that cannot read encrypted keys)",
    )
    p.add_argument("--subject", required=True, help="RFC 4514 subject, e.g. CN=vnf-a")
    p.add_argument("--san-uri", action="append", metavar="URI", help="SAN URI (repeatable)")
    p.add_argument("--san-dns", action="append", metavar="NAME", help="SAN DNS name (repeatable)")
    p.add_argument(
        "--validity",
        type=positive_int,
        metavar="SECONDS",
        help="validity in seconds, at least 1 (default: ca.certificate_validity_seconds)",
    )
    p.add_argument("--key-type", default="ec-p256", choices=[k.value for k in KeyType], help="for --generate-key")
    p.add_argument("--out", metavar="FILE", help="write the certificate (PEM) here instead of stdout")
    add_json(p)
    p.set_defaults(func=_issue)

    p = sub.add_parser("revoke", help="revoke a certificate by serial (hex, as `ftrust ca list` shows it)")
    p.add_argument("serial", help="the certificate's serial number (hex)")
    p.add_argument("--reason", required=True, help="one of: " + ", ".join(REASONS))
    add_json(p)
    p.set_defaults(func=_revoke)

    p = sub.add_parser("crl", help="sign a fresh CRL (DER by default, --pem for PEM)")
    p.add_argument("--out", metavar="FILE", help="write it here (atomically) instead of stdout")
    p.add_argument("--pem", action="store_true", help="PEM instead of DER")
    p.add_argument("--next-update", type=int, metavar="SECONDS", help="default: ca.crl_next_update_seconds")
    add_json(p)
    p.set_defaults(func=_crl)

    p = sub.add_parser("list", help="list issued certificates and their status")
    p.add_argument("--revoked", action="store_true", help="only revoked certificates")
    p.add_argument("--admin", action="store_true", help="the admin CA's certificates instead of the VNF CA's")
    add_json(p)
    p.set_defaults(func=_list)
