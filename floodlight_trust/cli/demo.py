"""`ftrust demo`: the end-to-end story on embedded defaults (configs/demo), in a temporary directory."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from floodlight_trust.errors import ExitCode, InputError, Location


def _demo(args: argparse.Namespace) -> int:
    from floodlight_trust.demo.deployment import Deployment
    from floodlight_trust.demo.narration import Narrator
    from floodlight_trust.demo.scenario import Demo

    if args.floodlight_properties and not Path(args.floodlight_properties).is_file():
        raise InputError("Floodlight properties file not found", location=Location(args.floodlight_properties))
    if args.floodlight_home and not Path(args.floodlight_home).is_dir():
        raise InputError("Floodlight home not found", location=Location(args.floodlight_home))
    if args.reattest_interval < 1:
        raise InputError(f"--reattest-interval must be at least 1 second, not {args.reattest_interval}")
    if not 1 <= args.replicas <= 4:
        raise InputError(f"--replicas must be 1-4, not {args.replicas}")
    database = check_database_url(args.database) if args.database else ""
    root = Path(tempfile.mkdtemp(prefix="ftrust-demo-"))
    narrator = Narrator(sys.stdout, quiet=args.json)
    narrator.say(f"floodlight-trust demo in {root} (simulated SGX; nothing here needs root)")
    if args.replicas > 1:
        where = "PostgreSQL" if database else "one shared SQLite file"
        narrator.say(f"{args.replicas} Verification Manager replicas on {where}, behind one address")
    deployment = Deployment(
        root, reattest_interval=args.reattest_interval, replicas=args.replicas, database_url=database
    )
    demo = Demo(
        deployment,
        narrator,
        floodlight_properties=Path(args.floodlight_properties).resolve() if args.floodlight_properties else None,
        revocation=args.revocation,
        controller_address=args.controller_address,
        floodlight_home=Path(args.floodlight_home).resolve() if args.floodlight_home else None,
    )
    ok = False
    restored: str | None = None
    try:
        ok = demo.run()
    finally:
        try:
            deployment.close()
        except Exception as e:  # still restore the user's file and print the transcript
            ok = False
            narrator.prompt(f"ftrust demo: stopping the demo's processes failed: {type(e).__name__}: {e}")
        restored = demo.restore_floodlight()
        if restored:
            narrator.prompt(f"ftrust demo: {restored}")
    keep = args.keep or not ok
    if args.json:
        doc: dict[str, Any] = {
            "ok": ok,
            "steps": [s.to_json() for s in narrator.steps],
            "directory": str(root) if keep else None,
            "floodlight_properties_restored": restored is not None,
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        narrator.say("\n" + narrator.summary())
        if not ok:
            narrator.say(f"\nthe demo FAILED; logs and state kept in {root}/logs")
        elif keep:
            narrator.say(f"\nstate kept in {root}")
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else int(ExitCode.DENIED)


def check_database_url(url: str) -> str:
    """A PostgreSQL URL without a password (a command line is visible to every user of the machine:
    the password comes from FTRUST_DB_PASSWORD (storage.password_env), PGPASSWORD or ~/.pgpass)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as e:
        raise InputError(f"--database is not a URL: {e}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise InputError(
            f"--database must be a postgresql:// URL, not {parts.scheme or url[:20]!r}",
            hint="without --database the demo uses its SQLite file (shared by the replicas)",
        )
    if parts.password:
        raise InputError(
            "--database must not carry a password (every user can read a command line)",
            hint="put it in FTRUST_DB_PASSWORD (or PGPASSWORD, or ~/.pgpass)",
        )
    return url


def register(subparsers: Any, name: str, help_text: str) -> None:
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--json", action="store_true", help="print a machine-readable transcript instead of the story")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (state, logs) afterwards")
    p.add_argument(
        "--floodlight-properties",
        metavar="FILE",
        help="provision this real Floodlight's properties (and a keystore beside them) instead of the Java endpoint;"
        " the file is restored as it was, and the files added beside it removed, when the demo ends",
    )
    p.add_argument(
        "--controller-address",
        default="127.0.0.1",
        metavar="HOST",
        help="the controller's address: put in its server certificate and used to reach it (default 127.0.0.1)",
    )
    p.add_argument(
        "--reattest-interval", type=int, default=2, metavar="SECONDS", help="re-attestation interval (default 2)"
    )
    p.add_argument(
        "--revocation",
        choices=("ocsp", "crl"),
        default="ocsp",
        help="how the controller checks revocation: OCSP (recommended, default) or CRLs only (up to 40 s)",
    )
    p.add_argument(
        "--floodlight-home",
        metavar="DIR",
        help="run the plugin chapter against a real Floodlight 1.2 in DIR (built or installed), which the demo"
        " provisions in its own directory, starts and stops itself (nothing in DIR is changed)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="run N Verification Manager replicas on one database behind one address, and kill one with"
        " SIGKILL between the enrollment and the re-attestation round (default 1)",
    )
    p.add_argument(
        "--database",
        metavar="URL",
        help="keep the VM's state in this PostgreSQL database (postgresql://user@host:port/db, no password:"
        " FTRUST_DB_PASSWORD, PGPASSWORD or ~/.pgpass) instead of the demo's SQLite file",
    )
    p.set_defaults(func=_demo, progress=False)  # narrated step by step: no progress line
