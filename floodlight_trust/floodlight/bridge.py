"""The java-bridge: the real JDK as Floodlight's TLS peer, for tests, ``status`` and the demo.

- :func:`build_jar` compiles ``java-bridge/`` once with ``javac`` (cached by a hash of the sources).
- :func:`keystore_probe` loads a keystore with ``java.security.KeyStore`` exactly as Floodlight's
  REST server does and returns what Java sees.
- :class:`FloodlightEndpoint` runs a Floodlight-equivalent HTTPS endpoint (same SSLContext, client
  authentication required, the JVM's trust manager and revocation flags) on a loopback port.

Passwords reach the JVM through an environment variable, never its command line.

JDK CRL caching (``sun.security.provider.certpath.URICertStore``, checked in JDK 17 and 25): a CRL
fetched from a distribution point is cached per URL for a fixed 30 s (``CHECK_INTERVAL``, not
configurable) in a JVM-wide cache; after that the next handshake refetches it with
``If-Modified-Since``, and if the server's ``Last-Modified`` is unchanged the old CRL is kept. So a
CRL server must not send ``Last-Modified`` (or must change it with every republication).
``com.sun.security.crl.timeout`` / ``com.sun.security.crl.readtimeout`` are the connect and read
timeouts of that fetch (seconds, or with an ``ms`` suffix; default 15 s), not a cache lifetime.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from floodlight_trust.errors import ConfigError, InputError, ServiceError
from floodlight_trust.floodlight import plugin
from floodlight_trust.secrets import Secret

BRIDGE_DIR = Path(__file__).resolve().parents[2] / "java-bridge"
PASSWORD_ENV = "FTRUST_BRIDGE_KEYSTORE_PASSWORD"  # noqa: S105 (a variable name)
JDK_CRL_RECHECK_SECONDS = 30  # URICertStore.CHECK_INTERVAL: the JDK's CRL cache lifetime

# The flags that make Floodlight's JVM (and ours) check client certificates against CRLs.
REVOCATION_JVM_FLAGS: tuple[str, ...] = (
    "-Dssl.TrustManagerFactory.algorithm=PKIX",
    "-Dcom.sun.net.ssl.checkRevocation=true",
    "-Dcom.sun.security.enableCRLDP=true",
)
# Fast start for short-lived JVMs (tests, the demo); Floodlight itself needs none of these.
_QUICK_JVM = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k", "-Xmx128m")


# OCSP (recommended, docs/floodlight.md): the JDK asks the responder in the certificate's AIA on
# every handshake (no response cache for client certificates), so a revocation is seen by the next
# connection; CRL stays the fallback when the responder cannot be reached.
OCSP_SECURITY_PROPERTIES = "ocsp.enable=true\n"


def crl_revocation_bound_seconds(crl_timeout_seconds: int = 5) -> float:
    """Documented worst case from a republished CRL to the first refused connection (CRL path):
    the JDK's 30 s cache, plus one fetch bounded by the connect and read timeouts."""
    return JDK_CRL_RECHECK_SECONDS + 2 * crl_timeout_seconds


def ocsp_revocation_bound_seconds(ocsp_timeout_seconds: int = 5) -> float:
    """Documented worst case from a committed revocation to the first refused connection (OCSP path):
    the next handshake's OCSP request, bounded by its timeout (no cache)."""
    return float(ocsp_timeout_seconds)


def revocation_jvm_flags(crl_timeout_seconds: int | None = 5) -> list[str]:
    """The revocation flags, plus bounded CRL connect/read timeouts (seconds) when given."""
    flags = list(REVOCATION_JVM_FLAGS)
    if crl_timeout_seconds is not None:
        flags.append(f"-Dcom.sun.security.crl.timeout={int(crl_timeout_seconds)}")
        flags.append(f"-Dcom.sun.security.crl.readtimeout={int(crl_timeout_seconds)}")
    return flags


def ocsp_jvm_flags(security_properties: str | Path, ocsp_timeout_seconds: int = 5) -> list[str]:
    """The flags that add OCSP (recommended) to :func:`revocation_jvm_flags`: the security
    properties file with ``ocsp.enable=true`` and a bounded OCSP request timeout."""
    return [
        f"-Djava.security.properties={security_properties}",
        f"-Dcom.sun.security.ocsp.timeout={ocsp_timeout_seconds}",
    ]


def floodlight_command(jvm_flags: Sequence[str], properties: str | Path) -> str:
    """The exact command line (shell-quoted) that starts Floodlight 1.2 from its source tree on
    ``properties`` with ``jvm_flags``."""
    words = ["java", *jvm_flags, "-jar", "target/floodlight.jar", "-cf", str(properties)]
    return " ".join(shlex.quote(w) for w in words)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError(
            f"{name} not found: the java-bridge needs a JDK (11 or newer) on PATH",
            hint="e.g. apt-get install openjdk-17-jdk-headless",
        )
    return found


def _sources_hash(root: Path) -> str:
    h = hashlib.sha256()
    files = sorted([root / "build.sh", *root.joinpath("src").rglob("*.java")])
    for f in files:
        h.update(str(f.relative_to(root)).encode())
        h.update(b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def build_jar(root: Path | None = None) -> Path:
    """Build (once per source version) and return the bridge jar.

    The jar goes to ``java-bridge/build/ftrust-bridge-HASH.jar``; concurrent callers wait on a
    lock instead of compiling twice. A missing ``javac`` is a ConfigError saying what to install.
    """
    src = root or BRIDGE_DIR
    if not (src / "build.sh").is_file():
        raise ConfigError(f"java-bridge sources not found at {src}", hint="run from a source checkout")
    jar = src / "build" / f"ftrust-bridge-{_sources_hash(src)}.jar"
    if jar.is_file():
        return jar
    _tool("javac")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with open(jar.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jar.is_file():
            return jar
        result = subprocess.run(
            ["bash", str(src / "build.sh"), str(jar)], capture_output=True, text=True, timeout=300, check=False
        )
        if result.returncode != 0 or not jar.is_file():
            raise ServiceError(f"building the java-bridge failed: {result.stderr.strip()[-2000:]}")
    return jar


_SLOTS: dict[str, int] = {}


def provider_slot(java: str | None = None) -> int:
    """The first free ``security.provider.N`` of this JDK (asked once per java binary)."""
    java = java or _tool("java")
    if java not in _SLOTS:
        result = subprocess.run(
            [java, *_QUICK_JVM, "-cp", str(build_jar()), "ftrust.bridge.ProviderSlot"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if result.returncode != 0 or not result.stdout.strip().isdigit():
            raise ServiceError(f"cannot ask the JDK for its provider list: {result.stderr.strip()[-500:]}")
        _SLOTS[java] = int(result.stdout.strip())
    return _SLOTS[java]


def build_floodlight_module(floodlight_home: Path, root: Path | None = None) -> Path:
    """Build the Floodlight module jar against an operator's Floodlight (``FLOODLIGHT_HOME``) with
    ``java-bridge/build.sh``; returns ``ftrust-floodlight.jar`` (next to the bridge jar, per home)."""
    src = root or BRIDGE_DIR
    _tool("javac")
    home = Path(floodlight_home).resolve()
    tag = hashlib.sha256(str(home).encode()).hexdigest()[:8]
    out_dir = src / "build" / f"floodlight-{_sources_hash(src)}-{tag}"
    module = out_dir / "ftrust-floodlight.jar"
    sources = sorted(src.joinpath("floodlight").rglob("*"))
    newest = max((f.stat().st_mtime for f in sources if f.is_file()), default=0.0)
    if module.is_file() and module.stat().st_mtime >= newest:
        return module
    out_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["bash", str(src / "build.sh"), str(out_dir / "ftrust-bridge.jar")],
        capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ, FLOODLIGHT_HOME=str(home)),
    )  # fmt: skip
    if result.returncode != 0 or not module.is_file():
        raise ServiceError(f"building the Floodlight module failed: {result.stderr.strip()[-2000:]}")
    return module


def _java_env(password: Secret) -> dict[str, str]:
    return dict(os.environ, **{PASSWORD_ENV: password.reveal()})


def keystore_probe(path: str | Path, password: Secret, type: str = "JKS") -> dict[str, Any]:
    """Load ``path`` with ``java.security.KeyStore`` as Floodlight does; return Java's view.

    The result has ``ok``; on success ``type``, ``entries`` (alias, kind, subject, sha256,
    key_recoverable...) and ``trusted`` (the trust anchors Java derived); on failure ``stage``
    (load, keymanager, trustmanager, context) and Java's ``error`` (e.g. "Cannot recover key").
    """
    java = _tool("java")
    jar = build_jar()
    result = subprocess.run(
        [java, *_QUICK_JVM, "-cp", str(jar), "ftrust.bridge.KeystoreProbe",
         "--keystore", str(path), "--type", type, "--password-env", PASSWORD_ENV],
        env=_java_env(password), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise ServiceError(
            f"keystore probe failed (exit {result.returncode}): {result.stderr.strip()[-500:]}"
        ) from None
    return data


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tls_port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if something at ``host:port`` answers a TLS ClientHello (checked by connecting).

    A client without a certificate may be refused by a server requiring one; a TLS alert still
    proves the server is up and speaking TLS.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, ctx.wrap_socket(raw) as tls:
            return tls.version() is not None
    except ssl.SSLError:
        return True
    except OSError:
        return False


class FloodlightEndpoint:
    """A Floodlight-equivalent HTTPS endpoint in a JVM, as a context manager.

    On enter the JVM is started on a free loopback port (or ``port``) and the call returns only
    once a TLS handshake gets an answer; on exit the JVM is stopped. ``pkix_revocation`` starts
    the JVM with :data:`REVOCATION_JVM_FLAGS` (CRL checking through the certificates' CRL
    distribution points) and ``crl_timeout_seconds`` bounds each CRL fetch. ``ocsp`` (with
    ``pkix_revocation``) also sets the security property ``ocsp.enable=true`` through a
    ``-Djava.security.properties`` file, as recommended for Floodlight: OCSP first, CRL as fallback;
    ``ocsp_timeout_seconds`` bounds each OCSP request (``com.sun.security.ocsp.timeout``).

    ``trust_config`` (a trust provider configuration, :mod:`floodlight_trust.floodlight.plugin`)
    runs the endpoint as Floodlight runs with the plugin: the floodlight-trust trust provider
    loaded through its JVM flags and the enforcement point (grants, per-request revocation
    status) in front of every route. Its log lines are in :meth:`log_text`.
    """

    def __init__(
        self,
        keystore: str | Path,
        password: Secret,
        *,
        keystore_type: str = "JKS",
        need_client_auth: bool = True,
        pkix_revocation: bool = False,
        crl_timeout_seconds: int | None = 5,
        ocsp: bool = False,
        ocsp_timeout_seconds: int = 5,
        host: str = "127.0.0.1",
        port: int = 0,
        jvm_flags: Sequence[str] = (),
        startup_timeout: float = 30.0,
        trust_config: str | Path | None = None,
    ):
        self.keystore = Path(keystore)
        self._password = password
        self.keystore_type = keystore_type
        self.need_client_auth = need_client_auth
        self.pkix_revocation = pkix_revocation
        self.crl_timeout_seconds = crl_timeout_seconds
        if ocsp and not pkix_revocation:
            raise InputError("OCSP checking needs pkix_revocation (the PKIX trust manager checks revocation)")
        self.ocsp = ocsp
        self.ocsp_timeout_seconds = ocsp_timeout_seconds
        self.trust_config = Path(trust_config).resolve() if trust_config is not None else None
        if self.trust_config is not None and pkix_revocation:
            raise InputError("the trust provider replaces the PKIX revocation flags: give one or the other")
        self._security_dir: tempfile.TemporaryDirectory[str] | None = None
        self.host = host
        self._requested_port = port
        self.extra_jvm_flags = tuple(jvm_flags)
        self.startup_timeout = startup_timeout
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self._log_lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def jvm_flags(self) -> list[str]:
        flags = list(_QUICK_JVM)
        if self.pkix_revocation:
            flags += revocation_jvm_flags(self.crl_timeout_seconds)
        if self.ocsp:
            flags.append(f"-Djava.security.properties={self.security_properties_path}")
            flags.append(f"-Dcom.sun.security.ocsp.timeout={int(self.ocsp_timeout_seconds)}")
        if self.trust_config is not None:
            flags += plugin.provider_jvm_flags(self.trust_config, self.provider_properties_path)
        return flags + list(self.extra_jvm_flags)

    @property
    def provider_properties_path(self) -> Path:
        """The ``-Djava.security.properties`` file installing the trust provider (with ``trust_config``)."""
        return self.security_properties_path.with_name("ftrust-provider.security")

    @property
    def security_properties_path(self) -> Path:
        """The ``-Djava.security.properties`` file enabling OCSP (written on start, removed on stop)."""
        if self._security_dir is None:
            self._security_dir = tempfile.TemporaryDirectory(prefix="ftrust-bridge-")
        return Path(self._security_dir.name) / "ftrust-ocsp.security"

    def log_text(self) -> str:
        """What the JVM wrote to stderr so far (one line per request, with the client's subject)."""
        return "".join(self._log_lines)

    def _drain_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self._log_lines.append(line)

    def start(self) -> FloodlightEndpoint:
        if not self.keystore.is_file():
            raise InputError(f"keystore not found: {self.keystore}")
        java = _tool("java")
        jar = build_jar()
        if self.ocsp:
            self.security_properties_path.write_text(OCSP_SECURITY_PROPERTIES)
        if self.trust_config is not None:
            self.provider_properties_path.write_text(plugin.security_properties(provider_slot(java)))
        port = self._requested_port or _free_port(self.host)
        cmd = [
            java, *self.jvm_flags, "-cp", str(jar), "ftrust.bridge.FloodlightEndpoint",
            "--keystore", str(self.keystore), "--type", self.keystore_type, "--host", self.host,
            "--port", str(port), "--need-client-auth", "true" if self.need_client_auth else "false",
            "--enforce", "true" if self.trust_config is not None else "false", "--password-env", PASSWORD_ENV,
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd,
            env=_java_env(self._password),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.startup_timeout
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # "LISTENING <port>" or EOF if the JVM died
        if not line.startswith("LISTENING "):
            self.stop()
            raise ServiceError(f"the Java endpoint failed to start: {self.log_text().strip()[-1500:]}")
        self.port = int(line.split()[1])
        # A bound socket is not proof: "started" is checked by completing a TLS handshake.
        while not tls_port_open(self.host, self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"the Java endpoint does not answer TLS: {self.log_text().strip()[-1500:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()
        if self._security_dir is not None:
            self._security_dir.cleanup()
            self._security_dir = None

    def __enter__(self) -> FloodlightEndpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
