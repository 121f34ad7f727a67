"""HTTP clients: the VM talking to agents, and admins or agents talking to the VM.

Every message is validated against its schema on the way in (and on the way out when
``protocol.CHECK_OUTBOUND`` is on); host and enclave evidence once only, where the VM parses it into
typed evidence (``protocol.evidence``). Errors of the other side (JSON documents of schema ``error``)
become the project's typed errors with the server's message, so the CLI prints one line.

The transport is the project's one HTTP stack (``floodlight_trust.clients.httpclient``, urllib3) with one
TLS context per client and kept-alive connections: requests' per-call preparation (settings
merging, cookies, hooks) cost more CPU than the TLS itself on the enrollment path. TLS is
configured explicitly (pinned CA file or the system store, optional client certificate); nothing
is taken from the environment (no proxy, no REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from floodlight_trust.clients import httpclient
from floodlight_trust.errors import FtrustError, InputError, Location, ServiceError, VerificationError
from floodlight_trust.http.peer_json import parse_json
from floodlight_trust.protocol import validate, validate_outbound
from floodlight_trust.secrets import Secret

# An agent's answer carries at most its IMA list and a quote with collateral; anything larger is refused
# before it is parsed (a hostile agent cannot make the VM buffer without bound).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def tls_context(
    verify: str | Path | bool, cert: tuple[str, str] | None, key_password: Secret | None = None
) -> ssl.SSLContext:
    """Client TLS: verify against ``verify`` (a PEM file of pinned certificates/CAs), the system
    store (True) or nothing (False, never used for the VM or agents in production)."""
    try:
        if verify is True and cert is None:  # the system store, loaded once per process
            return httpclient.system_tls_context()
        if verify is True:
            context = ssl.create_default_context()
        elif verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=str(verify))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert is not None:
            try:
                # Without a password, a callable that gives none: OpenSSL must never prompt on a terminal.
                context.load_cert_chain(
                    cert[0], cert[1], password=key_password.reveal_bytes() if key_password is not None else _no_password
                )
            except ssl.SSLError:
                raise client_key_error(cert[0], cert[1], key_password) from None
    except (OSError, ssl.SSLError) as e:
        raise InputError(f"cannot load TLS certificates ({verify if cert is None else cert[0]}): {e}") from None
    return context


def _no_password() -> bytes:
    return b""


def client_key_error(cert_path: str, key_path: str, password: Secret | None) -> InputError:
    """Why a client certificate and key did not load, in words naming the file (OpenSSL's own
    message is ``[SSL] PEM lib``): a wrong or missing password, a damaged key, or a key that is
    not the certificate's."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    where = Location(key_path)
    try:
        data = Path(key_path).read_bytes()
    except OSError as e:
        return InputError(f"cannot read the private key: {e.strerror}", location=where)
    try:
        key = serialization.load_pem_private_key(data, password.reveal_bytes() if password is not None else None)
    except TypeError:
        if password is None:
            return InputError("the private key is encrypted and no password was given", location=where)
        return InputError(
            f"the private key is not encrypted, but a password was given ({password.source})", location=where
        )
    except ValueError:
        if password is None:
            return InputError("not a PEM private key (or a damaged one)", location=where)
        return InputError(
            f"cannot decrypt the private key: the password from {password.source} is wrong (or the file is damaged)",
            location=where,
        )
    try:
        cert_key = x509.load_pem_x509_certificate(Path(cert_path).read_bytes()).public_key()
    except (OSError, ValueError):
        return InputError("not a PEM certificate", location=Location(cert_path))
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, spki) != cert_key.public_bytes(
        serialization.Encoding.DER, spki
    ):
        return InputError(f"the private key is not the key of the certificate {cert_path}", location=where)
    return InputError("OpenSSL cannot load this certificate and key", location=where)


class JsonClient:
    def __init__(
        self,
        base_url: str,
        *,
        verify: str | Path | bool = True,
        cert: tuple[str, str] | None = None,
        key_password: Secret | None = None,
        timeout: float = 30.0,
        what: str = "server",
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.what = what
        https = urlsplit(self.base_url).scheme == "https"
        self.pool = httpclient.new_pool(
            timeout=timeout, ssl_context=tls_context(verify, cert, key_password) if https else None
        )

    def close(self) -> None:
        self.pool.clear()

    def request(self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None) -> Any:
        url = self.base_url + path + (f"?{urlencode(params)}" if params else "")
        r = httpclient.send(
            self.pool,
            method,
            url,
            what=self.what,
            body=None if body is None else json.dumps(body, separators=(",", ":")).encode(),
            headers={"Content-Type": "application/json"} if body is not None else None,
            tls_hint="check the pinned certificate",
            max_bytes=MAX_RESPONSE_BYTES,
        )
        try:
            doc = parse_json(r.data, what=f"the answer of {self.what}")
        except InputError as e:  # a peer's malformed answer: typed, one line, never a traceback
            raise ServiceError(f"{e.message} (HTTP {r.status})") from None
        if r.status >= 400:
            raise _error_from(doc, r.status, self.what)
        return doc


def _error_from(doc: Any, status: int, what: str) -> FtrustError:
    try:
        validate("error", doc)
        err = doc["error"]
        message, hint = f"{what}: {err['message']}", err.get("hint")
    except InputError:
        message, hint = f"{what} answered HTTP {status}", None
    if status in (401, 403):
        e: FtrustError = VerificationError(message, hint=hint)
    elif status in (400, 404, 405, 409, 413, 415):
        e = InputError(message, hint=hint)
    else:
        e = ServiceError(message, hint=hint)
    reasons = doc.get("error", {}).get("reasons") if isinstance(doc, dict) else None
    if reasons:
        e.reasons = reasons  # type: ignore[attr-defined]
    return e


def check_agent_url(url: str) -> str:
    """An agent's base URL as registered: ``http(s)://host[:port]`` with an optional path, nothing else
    (no credentials, query, fragment, whitespace or control characters). InputError naming why."""

    def refuse(why: str) -> InputError:
        return InputError(f"agent_url {url[:80]!r} is not usable: {why}", hint="e.g. https://host-1.example:8444")

    if len(url) > 2048:
        raise refuse("longer than 2048 characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise refuse("it contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise refuse(str(e)) from None
    if parts.scheme not in ("http", "https"):
        raise refuse("the scheme must be http or https")
    if not parts.hostname:
        raise refuse("it names no host")
    if parts.username is not None or parts.password is not None:
        raise refuse("credentials do not belong in the URL")
    if parts.query or parts.fragment:
        raise refuse("no query or fragment")
    if port == 0:
        raise refuse("port 0")
    return url.rstrip("/")


class AgentClient(JsonClient):
    """The VM's view of one agent (``manager.context.AgentConnection``)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, verify: str | Path | bool = True):
        super().__init__(base_url, timeout=timeout, verify=verify, what="agent")

    def info(self) -> dict[str, Any]:
        doc = self.request("GET", "/v1/info")
        validate("agent_info", doc)
        return dict(doc)

    def host_evidence(self, nonce: bytes, ima_offset: int = 0) -> Any:
        """The agent's evidence document, as it came: the VM validates and parses it once, where it
        judges it (``protocol.evidence.HostEvidence``)."""
        body: dict[str, Any] = {"nonce": nonce.hex()}
        if ima_offset:
            body["ima_offset"] = ima_offset
        return self.request("POST", "/v1/host/evidence", body)

    def enclave_evidence(self, vnf: str, nonce: bytes) -> Any:
        """The enclave's evidence document, as it came: the VM validates and parses it once, where
        it judges it (``protocol.evidence.EnclaveEvidence``)."""
        return self.request("POST", f"/v1/vnfs/{quote(vnf)}/evidence", {"nonce": nonce.hex()})

    def tpm_registration(self) -> dict[str, Any]:
        doc = self.request("GET", "/v1/tpm/registration")
        validate("tpm_registration", doc)
        return dict(doc)

    def tpm_activate(self, message: dict[str, Any]) -> dict[str, Any]:
        validate_outbound("tpm_activation", message)
        doc = self.request("POST", "/v1/tpm/activate", message)
        validate("tpm_activated", doc)
        return dict(doc)

    def install_credentials(self, vnf: str, message: dict[str, Any]) -> dict[str, Any]:
        validate_outbound("credentials", message)
        doc = self.request("POST", f"/v1/vnfs/{quote(vnf)}/credentials", message)
        validate("credentials_ack", doc)
        return dict(doc)


class VmClient(JsonClient):
    """The VM's HTTPS API, for admins (with a client certificate) and for agents (evidence only)."""

    def __init__(
        self,
        base_url: str,
        *,
        server_certificate: str | Path | bool = True,
        client_certificate: tuple[str, str] | None = None,
        client_key_password: Secret | None = None,
        timeout: float = 60.0,
    ):
        super().__init__(
            base_url,
            verify=server_certificate,
            cert=client_certificate,
            key_password=client_key_password,
            timeout=timeout,
            what="VM",
        )

    # -- agent-facing ----------------------------------------------------------------------------
    def nonce(self, purpose: str, host: str, vnf: str | None = None) -> bytes:
        body: dict[str, Any] = {"purpose": purpose, "host": host}
        if vnf:
            body["vnf"] = vnf
        validate_outbound("nonce_request", body)
        doc = self.request("POST", "/v1/nonces", body)
        validate("nonce_response", doc)
        return bytes.fromhex(doc["nonce"])

    def submit_host_evidence(self, evidence: dict[str, Any]) -> dict[str, Any]:
        doc = self.request("POST", "/v1/attest/host", evidence)
        validate("host_verdict", doc)
        return dict(doc)

    def submit_enclave_evidence(self, evidence: dict[str, Any]) -> dict[str, Any]:
        doc = self.request("POST", "/v1/enroll", evidence)
        validate("enrollment", doc)
        return dict(doc)

    # -- admin -----------------------------------------------------------------------------------
    def add_host(
        self,
        name: str,
        agent_url: str,
        host_policy: str | None = None,
        agent_certificate: str | None = None,
        *,
        replace: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "agent_url": agent_url, "host_policy": host_policy}
        if agent_certificate:
            body["agent_certificate"] = agent_certificate
        if replace:
            body["replace"] = True
        validate_outbound("admin_host", body)
        return dict(self.request("POST", "/v1/admin/hosts", body))

    def remove_host(self, name: str, *, reason: str) -> dict[str, Any]:
        """Unregister a host; every certificate issued to it or on its platform is revoked."""
        return dict(self.request("DELETE", f"/v1/admin/hosts/{quote(name)}", params={"reason": reason}))

    def repin_host(self, name: str, *, reason: str) -> dict[str, Any]:
        """Let the host's next trusted quote pin another platform (audited)."""
        body = {"reason": reason}
        validate_outbound("admin_repin", body)
        return dict(self.request("POST", f"/v1/admin/hosts/{quote(name)}/repin", body))

    def hosts(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/admin/hosts")["hosts"])

    def vnfs(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/admin/vnfs")["vnfs"])

    def add_vnf(
        self, host: str, vnf: str, *, enroll_rule: str | None = None, mrenclave: str | None = None
    ) -> dict[str, Any]:
        """Register a VNF identity (host, name, enroll rule); its name binds to its first enclave."""
        body: dict[str, Any] = {"host": host, "vnf": vnf}
        if enroll_rule:
            body["enroll_rule"] = enroll_rule
        if mrenclave:
            body["mrenclave"] = mrenclave
        validate_outbound("admin_vnf", body)
        return dict(self.request("POST", "/v1/admin/vnfs", body))

    def release_vnf(self, host: str, vnf: str, *, reason: str) -> dict[str, Any]:
        """Free a VNF name from its enclave (its live certificates are revoked)."""
        body = {"reason": reason}
        validate_outbound("admin_repin", body)
        return dict(self.request("POST", f"/v1/admin/hosts/{quote(host)}/vnfs/{quote(vnf)}/release", body))

    def remove_vnf(self, host: str, vnf: str, *, reason: str) -> dict[str, Any]:
        """Unregister a VNF (its live certificates are revoked)."""
        return dict(
            self.request("DELETE", f"/v1/admin/hosts/{quote(host)}/vnfs/{quote(vnf)}", params={"reason": reason})
        )

    def enrollments(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/admin/enrollments")["enrollments"])

    def register_tpm(self, host: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/v1/admin/hosts/{quote(host)}/tpm", {}))

    def attest(self, host: str) -> dict[str, Any]:
        doc = self.request("POST", f"/v1/admin/hosts/{quote(host)}/attest", {})
        validate("host_verdict", doc)
        return dict(doc)

    def enroll(self, host: str, vnf: str, key_mode: str | None = None) -> dict[str, Any]:
        body = {"key_mode": key_mode} if key_mode else {}
        validate_outbound("admin_enroll", body)
        doc = self.request("POST", f"/v1/admin/hosts/{quote(host)}/vnfs/{quote(vnf)}/enroll", body)
        validate("enrollment", doc)
        return dict(doc)

    def revoke(self, *, reason: str, host: str | None = None, vnf: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason}
        if host:
            body["host"] = host
        if vnf:
            body["vnf"] = vnf
        validate_outbound("admin_revoke", body)
        return dict(self.request("POST", "/v1/admin/revoke", body))

    def reattest(self, host: str | None = None) -> dict[str, Any]:
        """Run one re-attestation round now (one host, or every trusted host); the round's report."""
        body = {"host": host} if host else {}
        validate_outbound("admin_reattest", body)
        return dict(self.request("POST", "/v1/admin/reattest", body))

    def reattest_status(self) -> dict[str, Any]:
        return dict(self.request("GET", "/v1/admin/reattest"))

    def reload_policy(self, *, dry_run: bool) -> dict[str, Any]:
        """Make the running VM load its policy file again; see ``manager.reload``."""
        body = {"dry_run": dry_run}
        validate_outbound("admin_reload", body)
        return dict(self.request("POST", "/v1/admin/policy/reload", body))

    def audit(self, since: str | None = None) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v1/admin/audit", params={"since": since} if since else None)["records"])
