"""Issue 17 against a REAL Floodlight 1.2: the plugin provisioned by `ftrust floodlight provision
--floodlight-home`, Floodlight started with the exact command it printed, then grants, revocation
(new handshake, resumed session, keep-alive: measured) and CA rotation without a restart.

Runs when FLOODLIGHT_HOME names a Floodlight 1.2 (``target/floodlight.jar`` or ``floodlight.jar``
and ``lib/``, e.g. built from the public source, tag v1.2). On JDK 11+ Floodlight also needs a
JAXB API jar: FLOODLIGHT_EXTRA_CLASSPATH (default /usr/share/java/jaxb-api.jar when present).
Without FLOODLIGHT_HOME every test here is skipped, and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from floodlight_trust import fileio
from floodlight_trust.floodlight import bridge, plugin
from floodlight_trust.pki.grants import HttpMethod, RestGrant
from tests.support import plugin as ps
from tests.support.cli import ftrust
from tests.support.floodlight import STORE_PASSWORD, make_ca
from tests.support.world import PASSWORD, World, enrolled_vnf, make_world

HOME = os.environ.get("FLOODLIGHT_HOME")
pytestmark = pytest.mark.skipif(
    not HOME, reason="FLOODLIGHT_HOME is not set: the real Floodlight 1.2 integration test did not run"
)
TARGET_SECONDS = 1.0
PREFIX = "net.floodlightcontroller.restserver.RestApiServer."
FLOW = json.dumps({"switch": "00:00:00:00:00:00:00:01", "name": "ftrust-test-flow", "priority": "32768",
                   "in_port": "1", "active": "true", "actions": "output=2"}).encode()  # fmt: skip


def modules() -> str:
    return ",".join([
        "net.floodlightcontroller.storage.memory.MemoryStorageSource",
        "net.floodlightcontroller.core.internal.FloodlightProvider",
        "net.floodlightcontroller.threadpool.ThreadPool",
        "net.floodlightcontroller.staticflowentry.StaticFlowEntryPusher",
        "net.floodlightcontroller.restserver.RestApiServer",
    ])  # fmt: skip


@dataclass
class RealFloodlight:
    world: World
    files: ps.PluginFiles
    url: str
    process: subprocess.Popen[str]
    lines: list[str]
    provision: dict[str, object]

    def log(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.process.poll() is None, f"Floodlight exited:\n{self.log()[-4000:]}"
            assert time.monotonic() < deadline, f"{text!r} not in Floodlight's log:\n{self.log()[-4000:]}"
            time.sleep(0.1)

    def client(self, vnf: str) -> ps.TlsClient:
        cert, key = enrolled_vnf(self.world, self.files.directory, vnf)
        return ps.TlsClient(self.url, cert, key, self.files.server_pem)


@pytest.fixture(scope="module")
def floodlight(tmp_path_factory: pytest.TempPathFactory, bridge_jar: Path) -> Iterator[RealFloodlight]:
    assert HOME is not None
    home = Path(HOME)
    tmp = tmp_path_factory.mktemp("real-floodlight")
    for world in make_world(tmp, crl_port=bridge._free_port("127.0.0.1"), extra_policy=ps.GRANTS_POLICY):
        files = ps.plugin_files(tmp / "plugin-src", world.ca)
        https_port = bridge._free_port("127.0.0.1")
        props = tmp / "floodlight.properties"
        props.write_text(
            f"floodlight.modules={modules()}\n"
            f"net.floodlightcontroller.core.internal.FloodlightProvider.openFlowPort={bridge._free_port('127.0.0.1')}\n"
            "net.floodlightcontroller.core.internal.FloodlightProvider.role=ACTIVE\n"
            "org.sdnplatform.sync.internal.SyncManager.authScheme=NO_AUTH\n"
            f"org.sdnplatform.sync.internal.SyncManager.port={bridge._free_port('127.0.0.1')}\n"
            f"org.sdnplatform.sync.internal.SyncManager.dbPath={tmp / 'syncdb'}/\n"
            f"{PREFIX}host=127.0.0.1\n"
        )
        cfg = tmp / "ftrust.toml"
        cfg.write_text(f'[state]\ndir = "{tmp / "state"}"\n')
        extra = os.environ.get("FLOODLIGHT_EXTRA_CLASSPATH") or (
            "/usr/share/java/jaxb-api.jar" if Path("/usr/share/java/jaxb-api.jar").is_file() else ""
        )
        argv = [
            "floodlight", "provision", "--properties", str(props), "--keystore", str(tmp / "keystore.jks"),
            "--server-san", "127.0.0.1", "--https-port", str(https_port), "--floodlight-home", str(home),
            "--plugin-dir", str(tmp / "ftrust-plugin"), "--vm-url", world.service.api_url,
            "--vm-certificate", str(world.service.tls_certificate),
            "--controller-credential", str(files.controller_p12), "--json",
        ]  # fmt: skip
        for jar in filter(None, extra.split(":")):
            argv += ["--extra-classpath", jar]
        r = ftrust(
            *argv,
            config=cfg,
            env={
                "FTRUST_KEYSTORE_PASSWORD": STORE_PASSWORD.reveal(),
                "FTRUST_CA_PASSWORD": PASSWORD.reveal(),
                "FTRUST_CONTROLLER_KEY_PASSWORD": ps.CONTROLLER_PASSWORD.reveal(),
            },
        )
        assert r.returncode == 0, r.stdout + r.stderr
        doc = json.loads(r.stdout)
        installed = doc["plugin"]
        server_pem = tmp / "floodlight-server.pem"
        from floodlight_trust.floodlight.keystore import FloodlightKeystore

        store = FloodlightKeystore.load(tmp / "keystore.jks", STORE_PASSWORD)
        from cryptography.hazmat.primitives import serialization

        server_pem.write_bytes(store.certificate("floodlight").public_bytes(serialization.Encoding.PEM))
        plugged_files = ps.PluginFiles(
            tmp / "ftrust-plugin", tmp / "keystore.jks", server_pem, tmp / "ftrust-plugin" / plugin.BUNDLE_FILE,
            tmp / "ftrust-plugin" / plugin.CONTROLLER_P12, tmp / "ftrust-plugin" / plugin.CONTROLLER_PASS,
        )  # fmt: skip
        proc = subprocess.Popen(
            installed["command"], cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        lines: list[str] = []
        reader = threading.Thread(target=_drain, args=(proc, lines), daemon=True)
        reader.start()
        fl = RealFloodlight(world, plugged_files, f"https://127.0.0.1:{https_port}", proc, lines, doc)
        try:
            deadline = time.monotonic() + 180
            while not bridge.tls_port_open("127.0.0.1", https_port):
                assert proc.poll() is None, f"Floodlight exited ({proc.returncode}):\n{fl.log()[-4000:]}"
                assert time.monotonic() < deadline, f"Floodlight's HTTPS port did not open:\n{fl.log()[-4000:]}"
                time.sleep(0.5)
            fl.wait_for(ps.SUBSCRIBED, timeout=60)
            yield fl
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            reader.join(timeout=5)
            (tmp / "floodlight.log").write_text(fl.log())


def test_floodlight_loads_the_module_and_keeps_the_password_out_of_its_log(floodlight: RealFloodlight) -> None:
    log = floodlight.log()
    assert "every REST route is guarded" in log
    assert "trust provider started: mode=stream" in log
    assert STORE_PASSWORD.reveal() not in log


def test_grants_on_real_floodlight(floodlight: RealFloodlight) -> None:
    monitor = floodlight.client("vnf-mon-real")
    pusher = floodlight.client("vnf-flow-real")
    assert monitor.request("GET", "/wm/core/health/json") == 200
    assert monitor.request("POST", "/wm/staticflowpusher/json", body=FLOW) == 403
    assert pusher.request("POST", "/wm/staticflowpusher/json", body=FLOW) == 200
    floodlight.wait_for('method=POST path=/wm/staticflowpusher/json status=403 refused="no grant for POST')
    floodlight.wait_for("vnf=urn:ftrust:vnf:vnf-flow-real")
    assert any(
        "vnf=urn:ftrust:vnf:vnf-flow-real " in line and "path=/wm/staticflowpusher/json status=200" in line
        for line in floodlight.lines
    )


def test_revocation_refuses_new_resumed_and_kept_alive_connections_on_real_floodlight(
    floodlight: RealFloodlight,
) -> None:
    vnf = "vnf-mon-real-revoked"
    c = floodlight.client(vnf)
    assert c.request("GET", "/wm/core/health/json") == 200
    assert c.request("GET", "/wm/core/health/json", resume=True) == 200
    resumed_before = c.reused
    resumable = c.session
    kept = c.keep_alive()
    assert ps.keep_alive_status(kept, "GET", "/wm/core/health/json") == 200
    fresh = ps.TlsClient(floodlight.url, *ps_paths(floodlight, vnf), floodlight.files.server_pem)
    decided = time.monotonic()
    assert floodlight.world.service.vm.revocation.revoke(vnf=vnf, reason="real floodlight test", actor="test")
    kept_delay = ps.first_refusal(
        lambda: ps.keep_alive_status(kept, "GET", "/wm/core/health/json"), since=decided, within=5
    )

    def resumed() -> int:
        c.session = resumable
        return c.request("GET", "/wm/core/health/json", resume=True)

    resumed_delay = ps.first_refusal(resumed, since=decided, within=5)
    new_delay = ps.first_refusal(lambda: fresh.request("GET", "/wm/core/health/json"), since=decided, within=5)
    kept.close()
    print(f"real Floodlight 1.2, stream: new {new_delay}, resumed {resumed_delay} (resumption before: "
          f"{resumed_before}), keep-alive {kept_delay} s")  # fmt: skip
    for what, delay in (("new handshake", new_delay), ("resumed session", resumed_delay), ("keep-alive", kept_delay)):
        assert delay is not None and delay <= TARGET_SECONDS, f"{what}: refused after {delay} s"


def test_ca_rotation_without_restart_on_real_floodlight(floodlight: RealFloodlight, tmp_path: Path) -> None:
    rotated = make_ca(tmp_path / "rotated", name="CN=rotated VNF CA")
    cert, key = ps.issue_vnf(rotated, tmp_path, "vnf-mon-rotated", (RestGrant(HttpMethod.GET, "/wm/core/**"),))
    c = ps.TlsClient(floodlight.url, cert, key, floodlight.files.server_pem)
    assert c.request("GET", "/wm/core/health/json") == 0
    bundle = floodlight.files.bundle
    original = bundle.read_bytes()
    pid = floodlight.process.pid
    try:
        fileio.atomic_write(bundle, original + rotated.certificate_pem, mode=0o644)
        start = time.monotonic()
        while c.request("GET", "/wm/core/health/json") != 200:
            assert time.monotonic() - start < 5, "the rotated CA was not followed"
            time.sleep(0.1)
        print(f"real Floodlight 1.2: new CA accepted {time.monotonic() - start:.2f} s after the bundle changed")
    finally:
        fileio.atomic_write(bundle, original, mode=0o644)
    assert floodlight.process.poll() is None and floodlight.process.pid == pid


def _drain(proc: subprocess.Popen[str], lines: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)


def ps_paths(fl: RealFloodlight, vnf: str) -> tuple[Path, Path]:
    return fl.files.directory / f"{vnf}.pem", fl.files.directory / f"{vnf}.key"


def test_demo_runs_the_plugin_chapter_against_a_real_floodlight_it_starts_and_stops() -> None:

    assert HOME is not None
    before = {p: p.stat().st_mtime_ns for p in Path(HOME).rglob("*") if p.is_file()}
    r = ftrust("demo", "--floodlight-home", HOME, "--json", timeout=900)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"] is True, [s for s in doc["steps"] if not s["ok"]]
    steps = {s["step"]: s for s in doc["steps"]}
    assert steps["plugin-controller"]["details"]["floodlight_home"] == str(Path(HOME).resolve())
    assert "net.floodlightcontroller.core.Main" in steps["plugin-controller"]["details"]["command_line"]
    assert steps["grants"]["details"] == {"vnf-mon": 403, "vnf-flow": 200, "resumed_before_revocation": True}
    assert steps["ca-rotated"]["details"]["pid"] == steps["plugin-controller"]["details"]["pid"]
    after = {p: p.stat().st_mtime_ns for p in Path(HOME).rglob("*") if p.is_file()}
    assert after == before  # nothing in the Floodlight home was changed
