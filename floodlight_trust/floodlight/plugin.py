"""The Floodlight-side plugin's files: the trust provider's configuration, its JVM flags, the
logging configuration, and the jars (``java-bridge/``; docs/floodlight.md, "The plugin").

- The trust provider (``ftrust.trust.FtrustProvider``, JDK only) is installed by a security
  properties file (``-Djava.security.properties``) naming it at the first free
  ``security.provider.N``, selected with ``-Dssl.TrustManagerFactory.algorithm=FtrustVNF`` and
  configured by ``-Dftrust.trust.config=FILE`` (:class:`TrustProviderConfig`).
- The Floodlight module (``ftrust.floodlight.FtrustModule``) puts the enforcement point in front of
  every REST route; it is listed in ``floodlight.modules``.

Pure helpers here render and parse these files; :mod:`floodlight_trust.floodlight.bridge` runs Java.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from floodlight_trust.errors import ConfigError, Location

PROVIDER_CLASS = "ftrust.trust.FtrustProvider"
TRUST_ALGORITHM = "FtrustVNF"
MODULE_CLASS = "ftrust.floodlight.FtrustModule"
CONFIG_PROPERTY = "ftrust.trust.config"
FLOODLIGHT_MAIN = "net.floodlightcontroller.core.Main"
MODULES_KEY = "floodlight.modules"
# The module's own option in Floodlight's properties (module class name as the prefix).
MODULE_CONFIG_KEY = f"{MODULE_CLASS}.trustConfig"
# Floodlight's RestApiServer logs "HTTPS' SSL keystore/truststore path: ..., password: ..." at INFO.
REST_API_LOGGER = "net.floodlightcontroller.restserver.RestApiServer"
DEFAULT_STALENESS_SECONDS = 5.0
OCSP_TIMEOUT_SECONDS = 2


class RevocationMode(StrEnum):
    STREAM = "stream"  # the VM's revocation stream, OCSP as the fallback past the staleness bound
    OCSP = "ocsp"  # OCSP for every check (a short answer cache)


@dataclass(frozen=True, slots=True)
class TrustProviderConfig:
    """What ``-Dftrust.trust.config`` names (``ftrust.trust.TrustConfig`` reads it)."""

    trust_bundle: Path
    mode: RevocationMode = RevocationMode.STREAM
    vm_url: str | None = None
    vm_certificate: Path | None = None
    controller_keystore: Path | None = None
    controller_password_file: Path | None = None
    staleness_seconds: float = DEFAULT_STALENESS_SECONDS
    ocsp_cache_seconds: float = 0.5

    def problems(self) -> list[str]:
        out: list[str] = []
        if self.mode is RevocationMode.STREAM:
            if not self.vm_url or not self.vm_url.startswith("https://"):
                out.append("vm.url must be the Verification Manager's https URL in stream mode")
            for name, value in (
                ("vm.certificate", self.vm_certificate),
                ("controller.keystore", self.controller_keystore),
                ("controller.keystore.password.file", self.controller_password_file),
            ):
                if value is None:
                    out.append(f"{name} is required in stream mode")
        if self.staleness_seconds <= 0:
            out.append("staleness.seconds must be positive")
        if self.ocsp_cache_seconds < 0:
            out.append("ocsp.cache.seconds must not be negative")
        return out

    def render(self) -> str:
        lines = [
            "# floodlight-trust trust provider (ftrust.trust.TrustConfig); written by `ftrust floodlight provision`",
            f"trust.bundle={self.trust_bundle}",
            f"revocation.mode={self.mode.value}",
        ]
        if self.vm_url:
            lines.append(f"vm.url={self.vm_url}")
        for key, value in (
            ("vm.certificate", self.vm_certificate),
            ("controller.keystore", self.controller_keystore),
            ("controller.keystore.password.file", self.controller_password_file),
        ):
            if value is not None:
                lines.append(f"{key}={value}")
        lines.append(f"staleness.seconds={self.staleness_seconds:g}")
        lines.append(f"ocsp.cache.seconds={self.ocsp_cache_seconds:g}")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str, *, source: str) -> TrustProviderConfig:
        values: dict[str, str] = {}
        for n, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith(("#", "!")):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                raise ConfigError(f"not key=value: {line!r}", location=Location(source, n))
            values[key.strip()] = value.strip()

        def path(key: str) -> Path | None:
            return Path(values[key]) if values.get(key) else None

        def number(key: str, default: float) -> float:
            try:
                return float(values.get(key, default))
            except ValueError:
                raise ConfigError(f"{key} is not a number: {values[key]!r}", location=Location(source)) from None

        bundle = path("trust.bundle")
        if bundle is None:
            raise ConfigError("trust.bundle is missing", location=Location(source))
        try:
            mode = RevocationMode(values.get("revocation.mode", "stream"))
        except ValueError:
            raise ConfigError(
                f"revocation.mode is {values['revocation.mode']!r}", location=Location(source), hint="stream or ocsp"
            ) from None
        return cls(
            trust_bundle=bundle,
            mode=mode,
            vm_url=values.get("vm.url") or None,
            vm_certificate=path("vm.certificate"),
            controller_keystore=path("controller.keystore"),
            controller_password_file=path("controller.keystore.password.file"),
            staleness_seconds=number("staleness.seconds", DEFAULT_STALENESS_SECONDS),
            ocsp_cache_seconds=number("ocsp.cache.seconds", 0.5),
        )


def security_properties(slot: int) -> str:
    """The ``-Djava.security.properties`` file installing the provider at ``security.provider.SLOT``."""
    return (
        "# floodlight-trust: the VNF trust provider (TrustManagerFactory FtrustVNF)\n"
        f"security.provider.{slot}={PROVIDER_CLASS}\n"
    )


def provider_jvm_flags(config: Path, security: Path) -> list[str]:
    """The JVM flags loading and selecting the trust provider.

    Session tickets off: the server then keeps resumable sessions in its cache, where a revocation
    invalidates them; OCSP requests (the fallback) time out after 2 s.
    """
    return [
        f"-Djava.security.properties={security}",
        f"-Dssl.TrustManagerFactory.algorithm={TRUST_ALGORITHM}",
        f"-D{CONFIG_PROPERTY}={config}",
        "-Djdk.tls.server.enableSessionTicketExtension=false",
        f"-Dcom.sun.security.ocsp.timeout={OCSP_TIMEOUT_SECONDS}",
    ]


def logback_xml(log_file: Path | None = None) -> str:
    """A logback configuration for Floodlight like its built-in one (console, INFO), but with
    RestApiServer at WARN so the keystore password it logs at INFO never reaches the log."""
    appender = (
        f'  <appender name="OUT" class="ch.qos.logback.core.FileAppender">\n    <file>{log_file}</file>\n'
        if log_file
        else '  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">\n'
    )
    return (
        "<!-- floodlight-trust: written by `ftrust floodlight provision` -->\n"
        '<configuration scan="false">\n' + appender + "    <encoder>\n"
        "      <pattern>%date{ISO8601} %-5level [%logger{36}] %msg%n</pattern>\n"
        "    </encoder>\n"
        "  </appender>\n"
        '  <root level="INFO">\n'
        '    <appender-ref ref="OUT" />\n'
        "  </root>\n"
        f'  <logger name="{REST_API_LOGGER}" level="WARN" />\n'
        '  <logger name="org.sdnplatform" level="INFO" />\n'
        '  <logger name="io.netty" level="INFO" />\n'
        '  <logger name="ftrust" level="INFO" />\n'
        "</configuration>\n"
    )


def add_module(modules_value: str, module: str = MODULE_CLASS) -> str | None:
    """``floodlight.modules`` with ``module`` appended; None when it is already listed."""
    listed = [m.strip() for m in modules_value.replace("\\\n", ",").split(",") if m.strip()]
    if module in listed:
        return None
    return ",".join([*listed, module])


def java_command(
    *,
    java: str,
    floodlight_jar: Path,
    lib_dir: Path,
    plugin_jars: Sequence[Path],
    properties: Path,
    config: Path,
    security: Path,
    logback: Path,
    extra_classpath: Sequence[Path] = (),
) -> list[str]:
    """The exact command line starting Floodlight with the plugin (no secret in it)."""
    classpath = ":".join(
        [str(floodlight_jar), f"{lib_dir}/*", *(str(j) for j in plugin_jars), *map(str, extra_classpath)]
    )
    return [
        java,
        *provider_jvm_flags(config, security),
        f"-Dlogback.configurationFile={logback}",
        "-cp",
        classpath,
        FLOODLIGHT_MAIN,
        "-cf",
        str(properties),
    ]


def shell_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


# -- installing (I/O) ----------------------------------------------------------------------------

CONFIG_FILE = "ftrust-trust.properties"
SECURITY_FILE = "ftrust.security"
LOGBACK_FILE = "logback.xml"
BUNDLE_FILE = "vnf-ca-bundle.pem"
VM_CERT_FILE = "vm-tls.pem"
CONTROLLER_P12 = "controller.p12"
CONTROLLER_PASS = "controller.pass"  # noqa: S105 (a file name)


@dataclass(frozen=True, slots=True)
class PluginInstall:
    """What :func:`install` wrote and the command line that starts Floodlight with it."""

    directory: Path
    jars: tuple[Path, ...]
    config: Path
    security: Path
    logback: Path
    properties_changed: tuple[str, ...]
    properties_backup: Path | None
    command: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "jars": [str(j) for j in self.jars],
            "trust_config": str(self.config),
            "security_properties": str(self.security),
            "logback": str(self.logback),
            "properties_changed": list(self.properties_changed),
            "properties_backup": str(self.properties_backup) if self.properties_backup else None,
            "command": list(self.command),
            "command_line": shell_line(self.command),
        }


def floodlight_jar(home: Path) -> Path:
    for candidate in (home / "target" / "floodlight.jar", home / "floodlight.jar"):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "no floodlight.jar (or target/floodlight.jar) in the Floodlight home",
        location=Location(str(home)),
        hint="--floodlight-home names the directory of an installed or built Floodlight 1.2",
    )


def install(
    *,
    floodlight_home: Path,
    properties: object,
    directory: Path,
    jars: Sequence[Path],
    bundle_pem: bytes,
    mode: RevocationMode,
    vm_url: str | None,
    vm_certificate: Path | None,
    controller_p12: Path | None,
    controller_password: object | None,
    staleness_seconds: float,
    slot: int,
    java: str,
    extra_classpath: Sequence[Path] = (),
) -> PluginInstall:
    """Install the plugin for the Floodlight at ``floodlight_home`` whose ``properties``
    (a :class:`~floodlight_trust.floodlight.properties.PropertiesFile`) it edits: jars, trust bundle,
    pinned VM certificate and controller credential copied into ``directory`` (secrets 0600), the
    trust provider's configuration, security properties and logging configuration written,
    ``floodlight.modules`` extended and the module pointed at its configuration. Every write is
    atomic; the properties file gets a backup."""
    from cryptography import x509

    from floodlight_trust import fileio
    from floodlight_trust.floodlight.properties import PropertiesFile
    from floodlight_trust.secrets import Secret

    assert isinstance(properties, PropertiesFile)
    fl_jar = floodlight_jar(floodlight_home)
    lib = floodlight_home / "lib"
    if not lib.is_dir():
        raise ConfigError("no lib/ directory in the Floodlight home", location=Location(str(floodlight_home)))
    try:
        cas = x509.load_pem_x509_certificates(bundle_pem)
    except ValueError as e:
        raise ConfigError(f"the trust bundle is not PEM certificates: {e}") from None
    if any(not _is_ca(c) for c in cas):
        raise ConfigError("the trust bundle holds a certificate that is not a CA", hint="only the VM's issuing CA(s)")
    cfg = TrustProviderConfig(
        trust_bundle=directory / BUNDLE_FILE,
        mode=mode,
        vm_url=vm_url,
        vm_certificate=directory / VM_CERT_FILE if vm_certificate else None,
        controller_keystore=directory / CONTROLLER_P12 if controller_p12 else None,
        controller_password_file=directory / CONTROLLER_PASS if controller_p12 else None,
        staleness_seconds=staleness_seconds,
    )
    problems = cfg.problems()
    if problems:
        raise ConfigError("cannot configure the trust provider: " + "; ".join(problems))
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    (directory / "lib").mkdir(exist_ok=True, mode=0o755)
    placed: list[Path] = []
    for jar in jars:
        target = directory / "lib" / ("ftrust-bridge.jar" if jar.name.startswith("ftrust-bridge") else jar.name)
        fileio.atomic_write(target, jar.read_bytes(), mode=0o644)
        placed.append(target)
    fileio.atomic_write(directory / BUNDLE_FILE, bundle_pem, mode=0o644)
    if vm_certificate is not None:
        fileio.atomic_write(
            directory / VM_CERT_FILE, fileio.read_bytes(vm_certificate, what="VM certificate"), mode=0o644
        )
    if controller_p12 is not None:
        assert isinstance(controller_password, Secret)
        fileio.atomic_write(directory / CONTROLLER_P12, fileio.read_bytes(controller_p12, what="controller credential"))
        fileio.atomic_write(directory / CONTROLLER_PASS, controller_password.reveal() + "\n", mode=0o600)
    config_path = directory / CONFIG_FILE
    fileio.atomic_write(config_path, cfg.render(), mode=0o640)
    security = directory / SECURITY_FILE
    fileio.atomic_write(security, security_properties(slot), mode=0o644)
    logback = directory / LOGBACK_FILE
    fileio.atomic_write(logback, logback_xml(), mode=0o644)
    changed: list[str] = []
    modules = add_module(properties.get(MODULES_KEY) or "")
    if modules is not None and properties.set(MODULES_KEY, modules):
        changed.append(MODULES_KEY)
    if properties.set(MODULE_CONFIG_KEY, str(config_path)):
        changed.append(MODULE_CONFIG_KEY)
    backup = properties.save() if changed else None
    assert properties.path is not None
    command = java_command(
        java=java, floodlight_jar=fl_jar, lib_dir=lib, plugin_jars=placed, properties=properties.path,
        config=config_path, security=security, logback=logback, extra_classpath=extra_classpath,
    )  # fmt: skip
    return PluginInstall(
        directory, tuple(placed), config_path, security, logback, tuple(changed), backup, tuple(command)
    )


def _is_ca(cert: object) -> bool:
    from cryptography import x509

    assert isinstance(cert, x509.Certificate)
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True, slots=True)
class PluginStatus:
    """What ``floodlight status`` reports about the plugin."""

    configured: bool
    module_listed: bool
    config_path: Path | None
    config: TrustProviderConfig | None
    bundle_subjects: tuple[str, ...]
    problems: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        c = self.config
        return {
            "configured": self.configured,
            "module_listed": self.module_listed,
            "trust_config": str(self.config_path) if self.config_path else None,
            "revocation_mode": c.mode.value if c else None,
            "vm_url": c.vm_url if c else None,
            "staleness_seconds": c.staleness_seconds if c else None,
            "trust_bundle": str(c.trust_bundle) if c else None,
            "trusted_cas": list(self.bundle_subjects),
            "problems": list(self.problems),
        }


def status(properties: object) -> PluginStatus:
    """Whether the plugin is configured in these Floodlight properties, and which VM it follows."""
    from cryptography import x509

    from floodlight_trust.floodlight.properties import PropertiesFile

    assert isinstance(properties, PropertiesFile)
    modules = properties.get(MODULES_KEY) or ""
    listed = add_module(modules) is None
    config_value = properties.get(MODULE_CONFIG_KEY)
    problems: list[str] = []
    if not listed:
        return PluginStatus(False, False, None, None, (), ())
    if not config_value:
        problems.append(f"{MODULE_CONFIG_KEY} is not set: the module falls back to -D{CONFIG_PROPERTY}")
        return PluginStatus(False, True, None, None, (), tuple(problems))
    path = Path(config_value)
    try:
        cfg = TrustProviderConfig.parse(path.read_text(encoding="utf-8"), source=str(path))
    except OSError as e:
        problems.append(f"trust provider configuration {path} cannot be read: {e.strerror}")
        return PluginStatus(False, True, path, None, (), tuple(problems))
    problems += cfg.problems()
    subjects: tuple[str, ...] = ()
    try:
        subjects = tuple(
            c.subject.rfc4514_string() for c in x509.load_pem_x509_certificates(cfg.trust_bundle.read_bytes())
        )
    except (OSError, ValueError) as e:
        problems.append(f"trust bundle {cfg.trust_bundle} is unusable: {e}")
    for p in (cfg.vm_certificate, cfg.controller_keystore, cfg.controller_password_file):
        if p is not None and not p.is_file():
            problems.append(f"{p} is missing")
    return PluginStatus(not problems, True, path, cfg, subjects, tuple(problems))
