"""Floodlight's Java keystore: read, change and write it so that Floodlight can load it.

Floodlight's REST server (Restlet, Simple HTTPS connector) uses ONE file as keystore and
truststore, of type JKS, with ONE password for the store, every key and the trust side:

- a private key whose password differs makes startup fail (``Cannot recover key``);
- every trustedCertEntry, and the leaf of every PrivateKeyEntry, is a trust anchor for client
  certificates; a CA in the server's own chain is not trusted unless it is also a trustedCertEntry;
- keytool wants passwords of at least 6 characters.

:meth:`FloodlightKeystore.problems` lists every way a store breaks these rules and
:meth:`FloodlightKeystore.save` refuses to write such a store. Writes are atomic with a timestamped
backup. PKCS12 is offered for Java 9+ deployments, whose ``JKS`` keystore type also reads PKCS12
files (``keystore.type.compat=true``, the default).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from pyasn1.error import PyAsn1Error

from floodlight_trust import clock, fileio
from floodlight_trust.clock import format_time
from floodlight_trust.errors import InputError, Location, ParseError, SecretError
from floodlight_trust.pki.keys import generate_private_key, signing_hash
from floodlight_trust.pki.profile import KeyType
from floodlight_trust.secrets import Secret

MIN_PASSWORD = 6
STORE_TYPES = ("JKS", "PKCS12")
KEYTOOL_PASSWORD_ENV = "FTRUST_KEYTOOL_PASSWORD"  # noqa: S105 (a variable name)


class KeystoreRefused(InputError):
    """The store (as it is, or as it would be written) is one Floodlight cannot load."""


@dataclass(frozen=True, slots=True)
class KeystoreEntry:
    alias: str
    kind: str  # "PrivateKeyEntry" or "trustedCertEntry"
    subject: str
    issuer: str
    not_after: datetime
    sha256: str
    chain_length: int
    key_password_matches: bool  # always True for trusted certificates

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "kind": self.kind,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_after": format_time(self.not_after),
            "sha256": self.sha256,
            "chain_length": self.chain_length,
            "key_password_matches": self.key_password_matches,
        }


@dataclass
class _KeyEntry:
    chain: list[bytes]  # DER, leaf first
    pkcs8: bytes | None  # DER PKCS#8 when decryptable with the store password
    foreign: Any = None  # the undecryptable pyjks entry, kept to report it


def _cert(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _fingerprint(der: bytes) -> str:
    return _cert(der).fingerprint(hashes.SHA256()).hex()


def normalize_type(store_type: str) -> str:
    t = store_type.upper().replace("PKCS#12", "PKCS12")
    if t not in STORE_TYPES:
        raise KeystoreRefused(
            f"keystore type {store_type!r} cannot be used by Floodlight", hint="use JKS (or PKCS12 on Java 9+)"
        )
    return t


class FloodlightKeystore:
    """An in-memory keystore with Floodlight's one-password rule. Aliases are lower case as in Java."""

    def __init__(self, password: Secret, store_type: str = "JKS", *, path: Path | None = None):
        self.password = password
        self.store_type = normalize_type(store_type)
        self.path = path
        self._keys: dict[str, _KeyEntry] = {}
        self._trusted: dict[str, bytes] = {}
        self._order: list[str] = []

    # -- loading --------------------------------------------------------------------------------

    @classmethod
    def new(cls, password: Secret, type: str = "JKS") -> FloodlightKeystore:
        return cls(password, type)

    @classmethod
    def load(cls, path: str | Path, password: Secret, type: str = "JKS") -> FloodlightKeystore:
        """Read ``path`` as Floodlight would: store password = every key's password."""
        p = Path(path)
        data = fileio.read_bytes(p, what="keystore")
        store = cls(password, type, path=p)
        if store.store_type == "JKS" and data[:4] in (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce"):
            store._load_jks(data, p)
        elif data[:1] == b"\x30":
            store._load_pkcs12(data, p)
        else:
            raise ParseError("not a JKS or PKCS12 keystore", location=Location(str(p), offset=0))
        return store

    def _load_jks(self, data: bytes, p: Path) -> None:
        if data[:4] == b"\xce\xce\xce\xce":
            raise KeystoreRefused(
                "keystore is JCEKS; Floodlight loads JKS", location=Location(str(p)), hint="convert it with keytool"
            )
        try:
            ks = jks.KeyStore.loads(data, self.password.reveal(), try_decrypt_keys=True)
        except jks.util.KeystoreSignatureException:
            raise SecretError(
                f"keystore password from {self.password.source} is wrong (integrity check failed)",
                location=Location(str(p)),
            ) from None
        except (jks.util.KeystoreException, ValueError, IndexError, PyAsn1Error) as e:
            # pyjks decodes the encrypted key's ASN.1 with pyasn1, whose errors are not ValueErrors.
            raise ParseError(f"damaged keystore: {e}", location=Location(str(p))) from None
        for alias, entry in ks.entries.items():
            if isinstance(entry, jks.PrivateKeyEntry):
                chain = [der for _, der in entry.cert_chain]
                if entry.is_decrypted():
                    self._keys[alias] = _KeyEntry(chain, entry.pkey_pkcs8)
                else:
                    self._keys[alias] = _KeyEntry(chain, None, entry)
            elif isinstance(entry, jks.TrustedCertEntry):
                self._trusted[alias] = entry.cert
            else:
                raise KeystoreRefused(
                    f"entry {alias!r} is a secret key; Floodlight's JKS keystore cannot hold one",
                    location=Location(str(p)),
                )
            self._order.append(alias)

    def _load_pkcs12(self, data: bytes, p: Path) -> None:
        # Java 9+ reads a PKCS12 file under the JKS type too. Only keytool knows which certificate
        # bags Java treats as trusted entries, so the file is converted to JKS by keytool.
        self.store_type = "PKCS12"
        self._load_jks(_keytool_convert(data, "PKCS12", "JKS", self.password, p), p)

    # -- reading --------------------------------------------------------------------------------

    def aliases(self) -> list[str]:
        return list(self._order)

    def entries(self) -> list[KeystoreEntry]:
        out: list[KeystoreEntry] = []
        for alias in self._order:
            if alias in self._trusted:
                kind, chain, recoverable = "trustedCertEntry", [self._trusted[alias]], True
            else:
                k = self._keys[alias]
                kind, chain, recoverable = "PrivateKeyEntry", list(k.chain), k.pkcs8 is not None
            c = _cert(chain[0])
            out.append(
                KeystoreEntry(
                    alias,
                    kind,
                    c.subject.rfc4514_string(),
                    c.issuer.rfc4514_string(),
                    c.not_valid_after_utc,
                    _fingerprint(chain[0]),
                    len(chain),
                    recoverable,
                )
            )
        return out

    def trusted_certificates(self) -> list[x509.Certificate]:
        """What Floodlight trusts for client certificates: trusted entries and key-entry leaves."""
        certs = [_cert(der) for der in self._trusted.values()]
        certs += [_cert(k.chain[0]) for k in self._keys.values()]
        return certs

    def certificate(self, alias: str) -> x509.Certificate:
        a = alias.lower()
        if a in self._trusted:
            return _cert(self._trusted[a])
        if a in self._keys:
            return _cert(self._keys[a].chain[0])
        raise InputError(f"no entry {alias!r} in the keystore", hint="see `ftrust floodlight keystore list`")

    def problems(self) -> list[str]:
        """Every reason Floodlight would fail to load this store or to serve client-authenticated HTTPS."""
        found: list[str] = []
        if len(self.password.reveal()) < MIN_PASSWORD:
            found.append(
                f"store password is shorter than {MIN_PASSWORD} characters (keytool and Floodlight setups refuse it)"
            )
        for alias, k in self._keys.items():
            if k.pkcs8 is None:
                found.append(
                    f"key {alias!r} has a password different from the store password "
                    "(Floodlight fails at startup with 'Cannot recover key')"
                )
        if not self._keys:
            found.append("no private key entry: Floodlight's HTTPS server has no certificate to present")
        if not self._trusted:
            found.append("no trusted certificate entry: no client CA is trusted")
        return found

    # -- changing -------------------------------------------------------------------------------

    def _check_new_alias(self, alias: str) -> str:
        a = alias.strip().lower()
        if not a:
            raise InputError("alias must not be empty")
        return a

    def add_trusted_ca(self, alias: str, cert: x509.Certificate) -> bool:
        """Trust ``cert`` under ``alias``. Returns False if exactly that entry is already there."""
        a = self._check_new_alias(alias)
        der = cert.public_bytes(serialization.Encoding.DER)
        if a in self._trusted:
            if self._trusted[a] == der:
                return False
            raise InputError(
                f"alias {a!r} already holds another certificate", hint="use rotate-ca to replace it with an overlap"
            )
        if a in self._keys:
            raise InputError(f"alias {a!r} is a private key entry")
        self._trusted[a] = der
        self._order.append(a)
        return True

    def rotate_ca(self, alias: str, new_cert: x509.Certificate) -> str | None:
        """Put ``new_cert`` under ``alias`` and keep the old CA as ``ALIAS-old-FINGERPRINT`` so that
        certificates of both stay accepted during the overlap. Returns the old entry's alias."""
        a = self._check_new_alias(alias)
        der = new_cert.public_bytes(serialization.Encoding.DER)
        old = self._trusted.get(a)
        if old is None:
            self.add_trusted_ca(a, new_cert)
            return None
        if old == der:
            return None
        kept = f"{a}-old-{_fingerprint(old)[:12]}"
        self._trusted[kept] = old
        self._order.insert(self._order.index(a), kept)
        self._trusted[a] = der
        return kept

    def rotated_out(self, alias: str, cert: x509.Certificate) -> str | None:
        """If ``cert`` is a CA that ``rotate_ca`` replaced under ``alias`` (kept as an ``-old-``
        entry while ``alias`` holds another), the alias it is kept under; putting it back would undo
        the rotation. None otherwise."""
        a = alias.strip().lower()
        der = cert.public_bytes(serialization.Encoding.DER)
        current = self._trusted.get(a)
        if current is None or current == der:
            return None
        kept = f"{a}-old-{_fingerprint(der)[:12]}"
        return kept if self._trusted.get(kept) == der else None

    def remove(self, alias: str) -> None:
        a = alias.lower()
        if a not in self._trusted and a not in self._keys:
            raise InputError(f"no entry {alias!r} in the keystore", hint="see `ftrust floodlight keystore list`")
        self._trusted.pop(a, None)
        self._keys.pop(a, None)
        self._order.remove(a)

    def ensure_server_key(
        self,
        alias: str,
        subject: str,
        sans: list[str] | tuple[str, ...],
        *,
        at: datetime | None = None,
        key_type: KeyType | str = KeyType.EC_P256,
        validity: timedelta = timedelta(days=825),
    ) -> bool:
        """Create Floodlight's HTTPS server key and self-signed certificate under ``alias`` unless a
        key entry is already there. ``sans`` are DNS names or IP addresses. Returns True if created."""
        a = self._check_new_alias(alias)
        if a in self._keys:
            return False
        if a in self._trusted:
            raise InputError(f"alias {a!r} is a trusted certificate, not a key")
        from floodlight_trust.pki.ca import parse_name

        name = parse_name(subject, what="server subject")
        now = (at or clock.now()).astimezone(UTC)
        key = generate_private_key(key_type)
        general: list[x509.GeneralName] = []
        for san in sans:
            try:
                general.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                general.append(x509.DNSName(san))
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if general:
            builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
        cert = builder.sign(key, signing_hash(key))
        self._keys[a] = _KeyEntry(
            [cert.public_bytes(serialization.Encoding.DER)],
            key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        self._order.append(a)
        return True

    def change_password(self, new: Secret) -> None:
        """Use ``new`` for the store and every key (each key is re-encrypted when saved)."""
        if len(new.reveal()) < MIN_PASSWORD:
            raise KeystoreRefused(f"new keystore password is shorter than {MIN_PASSWORD} characters")
        stuck = [a for a, k in self._keys.items() if k.pkcs8 is None]
        if stuck:
            raise KeystoreRefused(
                f"cannot re-encrypt key {stuck[0]!r}: it does not open with the current store password"
            )
        self.password = new

    # -- writing --------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The store's bytes; refuses (KeystoreRefused listing every problem) a store Floodlight cannot load."""
        found = self.problems()
        if found:
            raise KeystoreRefused(
                "refusing to write a keystore Floodlight cannot load: " + "; ".join(found),
                location=Location(str(self.path)) if self.path else None,
            )
        if self.store_type == "JKS":
            return self._jks_bytes()
        return self._pkcs12_bytes()

    def _jks_bytes(self) -> bytes:
        entries: list[Any] = []
        for alias in self._order:
            if alias in self._trusted:
                entries.append(jks.TrustedCertEntry.new(alias, self._trusted[alias]))
            else:
                k = self._keys[alias]
                assert k.pkcs8 is not None
                entries.append(jks.PrivateKeyEntry.new(alias, k.chain, k.pkcs8, key_format="pkcs8"))
        # saves() encrypts every key with the store password: the one-password rule by construction.
        return bytes(jks.KeyStore.new("jks", entries).saves(self.password.reveal()))

    def _pkcs12_bytes(self) -> bytes:
        return _keytool_convert(self._jks_bytes(), "JKS", "PKCS12", self.password, self.path)

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write atomically (temp file, fsync, rename) after a timestamped backup of the old file.
        Returns the backup's path (None if there was no previous file)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise InputError("no keystore path given")
        try:
            data = self.to_bytes()
        except KeystoreRefused as e:
            e.location = e.location or Location(str(target))  # a new store has no path until now
            raise
        backup = fileio.atomic_write(target, data, mode=0o600, backup=True)
        self.path = target
        return backup


def _keytool_convert(data: bytes, src_type: str, dest_type: str, password: Secret, where: Path | None) -> bytes:
    """Convert a whole store with ``keytool -importkeystore`` (same password for store and keys).

    The password reaches keytool through an environment variable (``-srcstorepass:env``), never argv.
    """
    keytool = shutil.which("keytool")
    if keytool is None:
        raise InputError(
            "PKCS12 keystores need the JDK's keytool, which is not on PATH", hint="install a JDK or use type JKS"
        )
    with tempfile.TemporaryDirectory(prefix="ftrust-ks-") as tmp:
        src = Path(tmp) / "in"
        dest = Path(tmp) / "out"
        src.write_bytes(data)
        env = dict(os.environ, **{KEYTOOL_PASSWORD_ENV: password.reveal()})
        args = [keytool, "-importkeystore", "-noprompt"]
        args += ["-srckeystore", str(src), "-srcstoretype", src_type]
        args += ["-destkeystore", str(dest), "-deststoretype", dest_type]
        for option in ("-srcstorepass", "-deststorepass"):
            args += [f"{option}:env", KEYTOOL_PASSWORD_ENV]
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            lines = (result.stderr + result.stdout).strip().splitlines()
            errors = [line for line in lines if "error" in line.lower()]
            reason = (errors or lines or [f"exit {result.returncode}"])[0]
            if "password" in reason.lower():
                raise SecretError(
                    f"keytool cannot open the {src_type} store with the password from {password.source}",
                    location=Location(str(where)) if where else None,
                )
            raise ParseError(f"keytool failed to convert {src_type} to {dest_type}: {reason}",
                             location=Location(str(where)) if where else None)  # fmt: skip
        return dest.read_bytes()
