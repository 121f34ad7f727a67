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
