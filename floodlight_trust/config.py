"""The one configuration file (TOML), validated against a declared set of keys.

Unknown sections or keys are an error naming the key (a typo must not silently fall back to a
default). Secrets are never values here: the config names an environment variable or a file (the
one exception, a password inside ``storage.url``, requires the file to be 0600).
Each subsystem declares its own section in ``SCHEMA``; ``configs/ftrust.toml`` documents them all.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floodlight_trust.errors import ConfigError, Location
from floodlight_trust.secrets import Secret, load_secret

# section -> key -> (type, default). A default of None means "unset" (optional).
SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "state": {
        "dir": (str, "./ftrust-state"),
    },
    # Where the state lives (floodlight_trust/storage/url.py): unset is SQLite in state.dir;
    # "postgresql://..." lets several `ftrust vm serve` replicas share one database.
    "storage": {
        "url": (str, None),
        "password_env": (str, "FTRUST_DB_PASSWORD"),  # PostgreSQL password, when not in a 0600 config's url
        "password_file": (str, None),
        "pool_size": (int, 10),  # PostgreSQL connections per process at most
        "connect_timeout_seconds": (int, 10),
    },
    "ca": {
        "dir": (str, "ca"),  # relative to state.dir
        "admin_dir": (str, "admin-ca"),  # the admin CA (admin client certificates only), relative to state.dir
        "key_type": (str, "ec-p256"),  # or "rsa-3072"
        "subject": (str, "CN=floodlight-trust VNF CA"),
        "password_env": (str, "FTRUST_CA_PASSWORD"),
        "password_file": (str, None),
        "crl_url": (str, "http://127.0.0.1:8990/crl.der"),
        "ocsp_url": (str, "http://127.0.0.1:8990/ocsp"),
        "crl_next_update_seconds": (int, 60),
        "certificate_validity_seconds": (int, 3600),
    },
    "floodlight": {
        "properties": (str, None),
        "keystore": (str, None),
        "keystore_type": (str, "JKS"),
        "password_env": (str, "FTRUST_KEYSTORE_PASSWORD"),
        "password_file": (str, None),
        "url": (str, "https://127.0.0.1:8081"),
        "ca_alias": (str, "ftrust-ca"),
    },
    "vm": {
        "host": (str, "127.0.0.1"),
        "port": (int, 8443),
        "crl_port": (int, 8990),
        "policy": (str, None),
        "trust_simulated_sgx": (bool, False),
        "simulated_sgx_roots": (str, None),  # PEM file of simulated root CAs (only with trust_simulated_sgx)
        "nonce_ttl_seconds": (int, 60),
        "reattest_interval_seconds": (int, 30),
        "grace_period_seconds": (int, 90),
        "renew_before_seconds": (int, 1800),
        "max_request_bytes": (int, 16 * 1024 * 1024),
        "request_timeout_seconds": (int, 30),
        "key_mode": (str, "enclave"),
        # The admin client key (`ftrust vm admin-cert`) is encrypted with this password.
        "admin_key_password_env": (str, "FTRUST_ADMIN_KEY_PASSWORD"),
        "admin_key_password_file": (str, None),  # "enclave" (key stays in enclave) or "vm-generated"
        "require_linkable_epid": (bool, False),  # IAS: VNF and host quotes must carry the same pseudonym
        # Per-connection limits of both VM listeners (http/server.py Timeouts; operator guide).
        "tls_handshake_timeout_seconds": ((int, float), 5),
        "header_timeout_seconds": ((int, float), 10),
        "body_timeout_seconds": ((int, float), 30),
        "write_timeout_seconds": ((int, float), 30),
        # Enroll rules that register a VNF name themselves on its first enrollment (else an admin's
        # `ftrust vm vnfs add HOST VNF` is needed); such registrations are named after the rule.
        "self_registering_enroll_rules": (list, []),
        # Replicas on one database (docs/operator-guide.md, "Replicas"): a re-attestation lease lasts
        # this long (0: half the interval, at least 1 s); revocations made through other replicas
        # reach this one's revocation stream within revocation_poll_seconds.
        "reattest_lease_seconds": (int, 0),
        "revocation_poll_seconds": ((int, float), 0.5),
    },
    "agent": {
        "host": (str, "127.0.0.1"),
        "port": (int, 8444),
        "tls_handshake_timeout_seconds": ((int, float), 5),
        "header_timeout_seconds": ((int, float), 10),
        "body_timeout_seconds": ((int, float), 30),
        "write_timeout_seconds": ((int, float), 30),
        "name": (str, None),
        "backend": (str, "sim"),  # "sim" or "gramine"
        "gramine_root": (str, "/dev/attestation"),
        "ima_log": (str, "/sys/kernel/security/ima/ascii_runtime_measurements"),
        "ima_log_fallback": (str, None),
        "sim_platform_dir": (str, None),
        "enclave_socket_dir": (str, None),  # one Unix socket per VNF enclave process: <vnf>.sock
        "vm_url": (str, None),  # agent-initiated enrollment: the VM's HTTPS API
        "vm_certificate": (str, None),  # the VM's pinned TLS certificate
        "sim_evidence": (str, "dcap"),  # sim backend: "dcap" or "epid" (quotes for IAS)
        "tls_certificate": (str, None),  # serve HTTPS with this certificate (PEM) ...
        "tls_key": (str, None),  # ... and key (PEM, 0600)
        "tpm": (str, None),  # anchor host evidence in a TPM: "device" (/dev/tpmrm0), "swtpm" or a TCTI string
        "tpm_state_dir": (str, None),  # tpm = "swtpm": the simulated TPM's state directory
    },
    "tpm": {
        "manufacturer_roots": (str, None),  # directory of TPM vendor CA certificates (PEM/DER)
        "pinned_ek_spki_sha256": (list, None),  # EK public keys the operator vouches for (SHA-256 of the SPKI)
        "unsafe_accept_ek_without_certificate": (bool, False),  # UNSAFE: any EK without a certificate
    },
    # One VNF enclave process (`ftrust enclave serve`): where and as which VNF it runs. WHAT it is
    # (its code, the pinned VM CA) is its image, measured into its MRENCLAVE.
    "enclave": {
        "vnf": (str, None),  # the VNF this enclave runs as (the VM binds the name to the enclave's key)
        "platform": (str, "sim"),  # "sim" (simulated SGX) or "gramine" (inside a Gramine enclave)
        "image": (str, None),  # the enclave image directory (enclave.toml, the pinned VM CA, the VNF code)
        "socket": (str, None),  # the agent reaches this enclave here: agent.enclave_socket_dir/<vnf>.sock
        "sealed_dir": (str, None),  # sim: sealed files (default state.dir/enclave-<vnf>); gramine: the encrypted mount
        "sim_platform_dir": (str, None),  # sim: the host's simulated platform (the agent's sim_platform_dir)
        "sim_evidence": (str, "dcap"),  # sim: "dcap" or "epid"
        "attestation_root": (str, "/dev/attestation"),  # gramine: this enclave's own attestation files
    },
    "ias": {
        "url": (str, "https://api.trustedservices.intel.com/sgx/attestation"),
        "api_version": (int, 5),
        "subscription_key_env": (str, "FTRUST_IAS_KEY"),
        "subscription_key_file": (str, None),
        "max_report_age_seconds": (int, 86400),
        "timeout_seconds": (int, 20),
        "unsafe_report_signing_ca": (str, None),  # NEVER in production: trust another report signing CA
    },
    "pcs": {
        "url": (str, "https://api.trustedservices.intel.com/sgx/certification/v4"),
        "cache_dir": (str, "pcs-cache"),  # relative to state.dir
        "timeout_seconds": (int, 20),
    },
}


@dataclass(frozen=True, slots=True)
class Range:
    """An integer setting's allowed values, ``low`` to ``high`` inclusive (None: unbounded)."""

    low: int
    high: int | None = None
    why: str = ""

    def problem(self, value: Any) -> str | None:
        if value < self.low or (self.high is not None and value > self.high):
            bounds = f"{self.low}-{self.high}" if self.high is not None else f"at least {self.low}"
            return f"must be {bounds}" + (f" ({self.why})" if self.why else "")
        return None


@dataclass(frozen=True, slots=True)
class OneOf:
    """A string setting's closed set of values."""

    values: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        if value not in self.values:
            return "must be one of " + ", ".join(repr(v) for v in self.values)
        return None


@dataclass(frozen=True, slots=True)
class StorageUrlSyntax:
    """``storage.url``: a URL of an engine we have, in that engine's syntax (storage/url.py)."""

    def problem(self, value: Any) -> str | None:
        from floodlight_trust.storage.url import StorageUrlError, parse_storage_url

        if value is None:  # unset: SQLite in state.dir
            return None
        try:
            parse_storage_url(value)
        except StorageUrlError as e:
            return str(e)
        return None


_PORT = Range(0, 65535, "0 picks a free port")
_SECONDS = Range(1)
# Checked at load, after the types: a value out of range fails here, located at its line, not when
# the service that uses it starts.
CONSTRAINTS: dict[tuple[str, str], Range | OneOf | StorageUrlSyntax] = {
    ("storage", "url"): StorageUrlSyntax(),
    ("storage", "pool_size"): Range(1, 1000),
    ("storage", "connect_timeout_seconds"): _SECONDS,
    ("ca", "key_type"): OneOf(("ec-p256", "ec-p384", "rsa-2048", "rsa-3072")),  # pki.profile.KeyType
    ("ca", "crl_next_update_seconds"): _SECONDS,
    ("ca", "certificate_validity_seconds"): _SECONDS,
    ("floodlight", "keystore_type"): OneOf(("JKS", "PKCS12")),
    ("vm", "port"): _PORT,
    ("vm", "crl_port"): _PORT,
    ("vm", "nonce_ttl_seconds"): _SECONDS,
    ("vm", "reattest_interval_seconds"): Range(0, None, "0 turns re-attestation off"),
    ("vm", "grace_period_seconds"): Range(0),
    ("vm", "renew_before_seconds"): Range(0),
    ("vm", "max_request_bytes"): Range(1024),
    ("vm", "reattest_lease_seconds"): Range(0, None, "0 means half the re-attestation interval"),
    ("vm", "request_timeout_seconds"): _SECONDS,
    ("vm", "key_mode"): OneOf(("enclave", "vm-generated")),
    ("agent", "port"): _PORT,
    ("agent", "backend"): OneOf(("sim", "gramine")),  # agent.backends.create: add a new backend's name here
    ("agent", "sim_evidence"): OneOf(("dcap", "epid")),
    ("ias", "api_version"): Range(4, 5, "IAS API v4 or v5"),
    ("ias", "max_report_age_seconds"): _SECONDS,
    ("ias", "timeout_seconds"): _SECONDS,
    ("pcs", "timeout_seconds"): _SECONDS,
}


@dataclass(frozen=True)
class Config:
    """A loaded configuration: every declared key with its value or default."""

    values: Mapping[str, Mapping[str, Any]]
    source: str | None = None  # the file it came from, for error messages
    base_dir: Path = Path(".")

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    def path(self, section: str, key: str) -> Path | None:
        """A path setting, resolved relative to the config file's directory."""
        value = self.values[section][key]
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base_dir / p

    @property
    def state_dir(self) -> Path:
        p = self.path("state", "dir")
        assert p is not None
        return p

    def state_path(self, section: str, key: str) -> Path:
        """A path relative to ``state.dir`` (e.g. the CA directory)."""
        value = self.values[section][key]
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.state_dir / p

    def secret(
        self, section: str, *, env_key: str = "password_env", file_key: str = "password_file", what: str
    ) -> Secret:
        return load_secret(env=self.get(section, env_key), file=self.path(section, file_key), what=what)


def _suggest(name: str, options: list[str]) -> str | None:
    close = difflib.get_close_matches(name, options, n=1)
    return f"did you mean {close[0]!r}?" if close else None


def _line_of(text: str, section: str, key: str | None) -> int | None:
    in_section = False
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("["):
            in_section = s.strip("[] ") == section
            if key is None and in_section:
                return n
        elif in_section and key and s.split("=", 1)[0].strip() == key:
            return n
    return None


def from_mapping(
    data: Mapping[str, Any], *, source: str | None = None, text: str = "", base_dir: Path = Path(".")
) -> Config:
    values: dict[str, dict[str, Any]] = {s: {k: d for k, (_, d) in keys.items()} for s, keys in SCHEMA.items()}
    for section, body in data.items():
        if section not in SCHEMA:
            raise ConfigError(
                f"unknown section [{section}]",
                location=Location(source, _line_of(text, section, None)),
                hint=_suggest(section, list(SCHEMA)),
            )
        if not isinstance(body, Mapping):
            raise ConfigError(f"{section} must be a table", location=Location(source))
        for key, value in body.items():
            spec = SCHEMA[section].get(key)
            loc = Location(source, _line_of(text, section, key))
            if spec is None:
                raise ConfigError(
                    f"unknown key {section}.{key}", location=loc, hint=_suggest(key, list(SCHEMA[section]))
                )
            kind = spec[0]
            if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
                want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
                raise ConfigError(f"{section}.{key} must be a {want}, got {type(value).__name__}", location=loc)
            check = CONSTRAINTS.get((section, key))
            problem = check.problem(str(value) if isinstance(check, OneOf) else value) if check else None
            if problem:
                shown = "<url with password>" if _has_password(value) else repr(value)
                raise ConfigError(f"{section}.{key} = {shown} {problem}", location=loc)
            values[section][key] = value
    return Config(values, source, base_dir)


def load(path: str | os.PathLike[str] | None) -> Config:
    """Load ``path`` (or the defaults when None)."""
    if path is None:
        return from_mapping({})
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config: {e.strerror}", location=Location(str(p))) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # Python 3.11's TOMLDecodeError only carries the position inside its message.
        m = re.match(r"(.*) \(at line (\d+), column (\d+)\)$", str(e))
        msg, line, col = (m.group(1), int(m.group(2)), int(m.group(3))) if m else (str(e), None, None)
        raise ConfigError(f"invalid TOML: {msg}", location=Location(str(p), line, col)) from None
    config = from_mapping(data, source=str(p), text=text, base_dir=p.parent)
    _check_secret_in_file(config, p, text)
    return config


def _has_password(url: Any) -> bool:
    from floodlight_trust.storage.url import url_has_password

    return isinstance(url, str) and url_has_password(url)


def _check_secret_in_file(config: Config, path: Path, text: str) -> None:
    # The one secret a config may hold is the database password inside storage.url (libpq's URL
    # form); then the file is a secret file, and like every secret file it must be 0600.
    if not _has_password(config.get("storage", "url")):
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"storage.url carries a password but the config is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o})",
            location=Location(str(path), _line_of(text, "storage", "url")),
            hint=f"chmod 600 {path}, or move the password to storage.password_file or storage.password_env",
        )
