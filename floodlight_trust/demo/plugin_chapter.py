"""The demo's plugin chapter: a controller running the floodlight-trust plugin (issue 17).

A second controller runs with the trust provider (following the VM's revocation stream) and the
enforcement point: the JDK endpoint by default, or, with ``--floodlight-home DIR``, a real
Floodlight 1.2 that the demo provisions in its own directory (``ftrust floodlight provision
--floodlight-home``), starts with the printed command and stops again (nothing in DIR is changed).

- grants: ``vnf-mon`` (no flow-push grant) gets 403 on ``POST /wm/staticflowpusher/json``, while
  ``vnf-flow`` (granted) gets 200; ``vnf-mon`` keeps a connection open and a TLS session to resume;
- after the host is compromised (the main story revokes every VNF of the host), the resumed session
  and the still-open keep-alive connection of ``vnf-mon`` are both refused, within 1 s;
- the CA is rotated with the controller running: a certificate from the new CA is refused, then
  accepted once the trust bundle lists both CAs, without a restart.
"""

from __future__ import annotations

import http.client
import json
import secrets
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from floodlight_trust import clock, fileio
from floodlight_trust.demo.narration import Step, StepFailed
from floodlight_trust.secrets import Secret

if TYPE_CHECKING:
    from floodlight_trust.demo.scenario import Demo

VNF_MON = "vnf-mon"
VNF_FLOW = "vnf-flow"
VNFS = (VNF_MON, VNF_FLOW)  # their enclaves run beside vnf-a's (the same reviewed image)
FLOW_PUSH = "/wm/staticflowpusher/json"
HEALTH = "/wm/core/health/json"
FLOW = json.dumps({"switch": "00:00:00:00:00:00:00:01", "name": "demo-flow", "priority": "100",
                   "in_port": "1", "active": "true", "actions": "output=2"}).encode()  # fmt: skip
TARGET_SECONDS = 1.0


@dataclass
class VnfClient:
    """A VNF's HTTPS client with its (sealed, opened) credentials: fresh, kept-alive or resumed."""

    host: str
    port: int
    ctx: ssl.SSLContext
    session: ssl.SSLSession | None = None
    reused: bool = False

    @classmethod
    def of(cls, url: str, chain: Path, key: Path, key_password: Any, controller_ca: Path) -> VnfClient:
        host, port = url.removeprefix("https://").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=str(controller_ca))
        ctx.load_cert_chain(str(chain), str(key), password=key_password.reveal() if key_password else None)
        return cls(host.strip("[]"), int(port), ctx)

    def request(self, method: str, path: str, *, body: bytes | None = None, resume: bool = False) -> int:
        """HTTP status on a fresh connection (0: the TLS handshake was refused)."""
        self.reused = False
        try:
            with socket.create_connection((self.host, self.port), timeout=10) as raw:
                with self.ctx.wrap_socket(
                    raw, server_hostname=self.host, session=self.session if resume else None
                ) as s:
                    self.reused = bool(s.session_reused)
                    payload = body or b""
                    s.sendall(
                        f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                        + payload
                    )
                    response = http.client.HTTPResponse(s)
                    response.begin()
                    response.read()
                    self.session = s.session
                    return response.status
        except (ssl.SSLError, OSError, http.client.HTTPException):  # refused, or cut off mid-answer
            return 0

    def keep_alive(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10)


def kept_status(conn: http.client.HTTPSConnection, path: str) -> int:
    sock = conn.sock
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return 0
    if sock is not None and conn.sock is not sock:
        raise StepFailed("the kept-alive connection was re-opened")
    return response.status


class PluginChapter:
    def __init__(self, demo: Demo, floodlight_home: Path | None = None):
        self.demo = demo
        self.d = demo.d
        self.n = demo.n
        self.floodlight_home = floodlight_home
        self.url = ""
        self.dir = self.d.root / "controller-plugin"
        self.bundle = self.dir / "vnf-ca-bundle.pem"
        self.log: Any = None
        self.kept: http.client.HTTPSConnection | None = None
        self.mon: VnfClient | None = None
        self.pid: int | None = None

    # -- the controller with the plugin --------------------------------------------------------------
    def start_controller(self) -> None:
        where = "a real Floodlight 1.2" if self.floodlight_home else "the JDK endpoint"
        with self.n.step(
            "plugin-controller",
            "controller with the plugin up",
            f"A controller with the floodlight-trust plugin starts ({where}): trust provider following the"
            " VM's revocation stream, REST grants checked on every request",
            "the trust provider subscribes to the VM's revocation stream",
        ) as step:
            self.dir.mkdir(parents=True, exist_ok=True)
            cred = self._ran(step, "floodlight controller-cert",
                             "floodlight", "controller-cert", "demo-controller", "--out", str(self.dir / "credential"))  # fmt: skip
            if self.floodlight_home is not None:
                self._start_real_floodlight(step, Path(cred["credential"]))
            else:
                self._start_endpoint(step, Path(cred["credential"]))
            self._wait_log("subscribed to the revocation stream", step, timeout=90)
            step.ok = True
            step.observed = f"{self.url}: subscribed to {self.d.vm_url}/v1/revocations/stream"

    def _ran(self, step: Step, what: str, *argv: str) -> dict[str, Any]:
        from floodlight_trust.demo.scenario import _ran

        return _ran(step, what, self.d.ftrust(self.d.vm_config, *argv, "--json", timeout=600))

    def _start_endpoint(self, step: Step, credential: Path) -> None:
        from floodlight_trust.floodlight.bridge import FloodlightEndpoint, _free_port
        from floodlight_trust.floodlight.plugin import TrustProviderConfig

        fileio.atomic_write(self.bundle, (self.d.state / "ca" / "ca.cert.pem").read_bytes(), mode=0o644)
        password = self.dir / "credential" / "controller.pass"
        fileio.atomic_write(password, self.d.controller_key_password.reveal() + "\n", mode=0o600)
        config = self.dir / "ftrust-trust.properties"
        cfg = TrustProviderConfig(
            trust_bundle=self.bundle, vm_url=self.d.vm_url, vm_certificate=self.d.vm_certificate,
            controller_keystore=credential, controller_password_file=password,
        )  # fmt: skip
        fileio.atomic_write(config, cfg.render(), mode=0o640)
        endpoint = FloodlightEndpoint(
            self.demo.keystore, self.d.keystore_password, trust_config=config,
            host=self.demo.controller_address, port=_free_port(self.demo.controller_address),
        )  # fmt: skip
        self.d.endpoints.append(endpoint)
        endpoint.start()
        self.url = endpoint.url
        self.log = endpoint.log_text
        self.pid = endpoint._proc.pid if endpoint._proc else None
        step.details = {"url": self.url, "pid": self.pid, "jvm_flags": endpoint.jvm_flags, "trust_config": str(config)}

    def _start_real_floodlight(self, step: Step, credential: Path) -> None:
        from floodlight_trust.demo.deployment import Process
        from floodlight_trust.floodlight.bridge import _free_port, tls_port_open

        assert self.floodlight_home is not None
        port = _free_port("127.0.0.1")
        props = self.dir / "floodlight.properties"
        props.write_text(
            "floodlight.modules=net.floodlightcontroller.storage.memory.MemoryStorageSource,"
            "net.floodlightcontroller.core.internal.FloodlightProvider,"
            "net.floodlightcontroller.threadpool.ThreadPool,"
            "net.floodlightcontroller.staticflowentry.StaticFlowEntryPusher,"
            "net.floodlightcontroller.restserver.RestApiServer\n"
            f"net.floodlightcontroller.core.internal.FloodlightProvider.openFlowPort={_free_port('127.0.0.1')}\n"
            "org.sdnplatform.sync.internal.SyncManager.authScheme=NO_AUTH\n"
            f"org.sdnplatform.sync.internal.SyncManager.port={_free_port('127.0.0.1')}\n"
            f"org.sdnplatform.sync.internal.SyncManager.dbPath={self.dir / 'syncdb'}/\n"
            "net.floodlightcontroller.restserver.RestApiServer.host=127.0.0.1\n"
        )
        jaxb = Path("/usr/share/java/jaxb-api.jar")
        doc = self._ran(
            step, "floodlight provision --floodlight-home", "floodlight", "provision", "--properties", str(props),
            "--keystore", str(self.dir / "keystore.jks"), "--server-san", "127.0.0.1", "--https-port", str(port),
            "--floodlight-home", str(self.floodlight_home), "--plugin-dir", str(self.dir / "plugin"),
            "--vm-url", self.d.vm_url, "--vm-certificate", str(self.d.vm_certificate),
            "--controller-credential", str(credential),
            *(["--extra-classpath", str(jaxb)] if jaxb.is_file() else []),
        )  # fmt: skip
        installed = doc["plugin"]
        self.bundle = Path(installed["directory"]) / "vnf-ca-bundle.pem"
        from cryptography.hazmat.primitives import serialization

        from floodlight_trust.floodlight.keystore import FloodlightKeystore

        store = FloodlightKeystore.load(self.dir / "keystore.jks", self.d.keystore_password)
        self.controller_cert = self.dir / "server.pem"
        self.controller_cert.write_bytes(store.certificate("floodlight").public_bytes(serialization.Encoding.PEM))
        log_path = self.d.root / "logs" / "floodlight.log"
        log_path.parent.mkdir(exist_ok=True)
        out = log_path.open("wb")
        popen = subprocess.Popen(installed["command"], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=self.dir)  # fmt: skip
        self.d.processes.append(Process("floodlight", popen, log_path, out))
        self.pid = popen.pid
        self.log = lambda: log_path.read_text(errors="replace")
        self.url = f"https://127.0.0.1:{port}"
        ok, _ = self.n.wait("waiting for Floodlight's HTTPS port", lambda: tls_port_open("127.0.0.1", port),
                            timeout=300, interval=1.0)  # fmt: skip
        if not ok or popen.poll() is not None:
            raise StepFailed(f"Floodlight did not open its HTTPS port: {self.log()[-1500:]}")
        step.details = {
            "url": self.url,
            "command_line": installed["command_line"],
            "floodlight_home": str(self.floodlight_home),
            "pid": self.pid,
        }

    def _wait_log(self, text: str, step: Step, *, timeout: float) -> None:
        ok, _ = self.n.wait(f"waiting for {text!r} in the controller's log", lambda: text in self.log(),
                            timeout=timeout, interval=0.2)  # fmt: skip
        if not ok:
            raise StepFailed(f"{text!r} not in the controller's log: {self.log()[-1500:]}")

    def _client(self, vnf: str) -> VnfClient:
        """The VNF's TLS client, in this process: the demo opens the VNF's simulated enclave (its
        sealed key) as `ftrust enclave call` does, to drive keep-alive and resumption itself."""
        from cryptography.hazmat.primitives import serialization

        from floodlight_trust.config import load
        from floodlight_trust.enclave.service import open_enclave

        opened = open_enclave(load(self.d.enclave_config(vnf)), create_key=False)
        identity = opened.runtime.tls_identity()
        if identity is None:
            raise StepFailed(f"the enclave of {vnf} has no credentials installed")
        installed, key = identity
        password = Secret(secrets.token_urlsafe(18), "generated")
        chain, key_path = self.dir / f"{vnf}.chain.pem", self.dir / f"{vnf}.key"
        fileio.atomic_write(chain, "".join(installed.chain_pem), mode=0o644)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.reveal_bytes()),
        )
        fileio.atomic_write(key_path, pem, mode=0o600)
        ca = getattr(self, "controller_cert", self.demo.controller_cert)
        return VnfClient.of(self.url, chain, key_path, password, ca)

    # -- the steps -----------------------------------------------------------------------------------
    def grants(self) -> None:
        with self.n.step(
            "grants",
            "no grant: 403; granted: 200",
            f"{VNF_MON} (monitoring: GET /wm/core/**, GET /wm/device/) and {VNF_FLOW} (also POST {FLOW_PUSH}) "
            f"enroll and push a flow",
            f"{VNF_MON} gets 403 with the reason, {VNF_FLOW} gets 200; both calls are in the controller's log",
        ) as step:
            from floodlight_trust.demo.deployment import HOST

            for vnf in (VNF_MON, VNF_FLOW):
                self.demo.admin.add_vnf(HOST, vnf)  # its identity, as an admin registers it
                doc = self.demo.admin.enroll(HOST, vnf)
                if not doc.get("allowed"):
                    raise StepFailed(f"{vnf} refused: " + "; ".join(r["message"] for r in doc.get("reasons", [])))
            self.mon = self._client(VNF_MON)
            flow = self._client(VNF_FLOW)
            refused = self.mon.request("POST", FLOW_PUSH, body=FLOW)
            pushed = flow.request("POST", FLOW_PUSH, body=FLOW)
            step.details = {VNF_MON: refused, VNF_FLOW: pushed}
            if refused != 403 or pushed != 200:
                raise StepFailed(f"{VNF_MON}: HTTP {refused} (403 expected), {VNF_FLOW}: HTTP {pushed} (200 expected)")
            line = f'refused="no grant for POST {FLOW_PUSH}"'
            self._wait_log(line, step, timeout=10)
            # Held open across the revocation: a kept-alive connection and a session to resume.
            if self.mon.request("GET", HEALTH) != 200 or self.mon.request("GET", HEALTH, resume=True) != 200:
                raise StepFailed(f"{VNF_MON} cannot call GET {HEALTH}")
            step.details["resumed_before_revocation"] = self.mon.reused
            self.kept = self.mon.keep_alive()
            if kept_status(self.kept, HEALTH) != 200:
                raise StepFailed("the keep-alive connection was not accepted")
            step.ok = True
            step.observed = f"{VNF_MON}: HTTP 403 (no grant for POST {FLOW_PUSH}); {VNF_FLOW}: HTTP 200; logged"

    def refuse_after_revocation(self) -> None:
        with self.n.step(
            "plugin-revoked",
            "revoked: resumed session and keep-alive refused",
            f"{VNF_MON} (revoked with the host) resumes its TLS session and reuses its open keep-alive connection",
            f"both refused within {TARGET_SECONDS:.0f} s of the revocation (the plugin checks every request)",
        ) as step:
            assert self.mon is not None and self.kept is not None
            since = self.demo.revoked_at_monotonic
            session = self.mon.session

            def first(probe: Any) -> float | None:
                while time.monotonic() - since < 10:
                    if probe() != 200:
                        return time.monotonic() - since
                    time.sleep(0.02)
                return None

            kept = first(lambda: kept_status(self.kept, HEALTH))

            def resumed() -> int:
                assert self.mon is not None
                self.mon.session = session
                return self.mon.request("GET", HEALTH, resume=True)

            resumed_delay = first(resumed)
            self.kept.close()
            step.details = {"keep_alive_refused_after_seconds": kept, "resumed_refused_after_seconds": resumed_delay,
                            "resumed_again": self.mon.reused}  # fmt: skip
            if kept is None or resumed_delay is None:
                raise StepFailed(f"still accepted: keep-alive {kept}, resumed session {resumed_delay}")
            step.ok = True
            step.observed = (
                f"keep-alive refused {kept:.2f} s and resumed session {resumed_delay:.2f} s after the revocation"
                f" was seen at the VM (target {TARGET_SECONDS:.0f} s; pushed to the controller by the stream)"
            )

    def rotate(self) -> None:
        with self.n.step(
            "ca-rotated",
            "CA rotated, no restart",
            "A new CA is introduced while the controller runs: the trust bundle lists old and new CA (overlap)",
            "a VNF certificate from the new CA is refused before and accepted after, by the same controller process",
        ) as step:
            from cryptography.hazmat.primitives import serialization

            from floodlight_trust.pki.ca import CertificateAuthority, generate_private_key
            from floodlight_trust.pki.grants import HttpMethod, RestGrant
            from floodlight_trust.pki.profile import CertificateProfile
            from floodlight_trust.storage.sqlite import SqliteStorage

            rotated = self.dir / "next-ca"
            new_ca = CertificateAuthority.init(
                rotated, Secret(secrets.token_urlsafe(18), "generated"), subject="CN=floodlight-trust VNF CA 2",
                crl_url=f"http://127.0.0.1:{self.d.crl_port}/crl.der", ocsp_url=f"http://127.0.0.1:{self.d.crl_port}/ocsp",
                at=clock.now(), records=SqliteStorage(rotated / "records.db").certificates(),
            )  # fmt: skip
            key = generate_private_key("ec-p256")
            profile = CertificateProfile(rest_grants=(RestGrant(HttpMethod.GET, "/wm/core/**"),)).render(
                vnf="vnf-mon-2", host="demo-host"
            )
            issued = new_ca.issue(key.public_key(), profile, at=clock.now())
            (rotated / "vnf.pem").write_bytes(issued.pem)
            (rotated / "vnf.key").write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))  # fmt: skip
            ca = getattr(self, "controller_cert", self.demo.controller_cert)
            c = VnfClient.of(self.url, rotated / "vnf.pem", rotated / "vnf.key", None, ca)
            before = c.request("GET", HEALTH)
            old = self.bundle.read_bytes()
            fileio.atomic_write(self.bundle, old + new_ca.certificate_pem, mode=0o644)
            ok, waited = self.n.wait("waiting for the controller to follow the bundle",
                                     lambda: c.request("GET", HEALTH) == 200, timeout=10, interval=0.2)  # fmt: skip
            step.details = {
                "before": before,
                "after": 200 if ok else None,
                "seconds": round(waited, 2),
                "pid": self.pid,
            }
            if before == 200:
                raise StepFailed("the new CA's certificate was accepted before the bundle listed it")
            if not ok:
                raise StepFailed("the new CA's certificate is still refused after the bundle changed")
            step.ok = True
            step.observed = f"refused before, HTTP 200 {waited:.1f} s after the bundle changed; same process {self.pid}"
