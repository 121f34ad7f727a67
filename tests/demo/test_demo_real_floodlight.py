"""`ftrust demo --floodlight-properties FILE`: the path for a real Floodlight, with the java-bridge
playing the controller the person restarts.

The demo provisions the user's properties file, asks (on stderr, even with ``--json``) for a
restart with an exact command line, waits for the HTTPS port, runs the story, then restores the
file byte for byte and removes what it added beside it.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
from pathlib import Path

from floodlight_trust.demo.scenario import PROPERTIES, restart_command, url_host
from floodlight_trust.floodlight.bridge import FloodlightEndpoint
from floodlight_trust.floodlight.properties import PREFIX, PropertiesFile
from floodlight_trust.secrets import Secret
from tests.support.cli import ftrust_command, json_transcript


def test_real_floodlight_run_prompts_on_stderr_and_restores_the_properties(tmp_path: Path) -> None:
    floodlight = tmp_path / "floodlight"
    floodlight.mkdir()
    properties = floodlight / "site.properties"
    original = PROPERTIES.encode()
    properties.write_bytes(original)
    properties.chmod(0o644)

    proc = subprocess.Popen(
        ftrust_command("demo", "--json", "--floodlight-properties", properties, "--controller-address", "localhost"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    stderr_lines: list[str] = []
    command_seen = threading.Event()
    command: list[str] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr_lines.append(line)
            if line.strip().startswith("java ") and not command:
                command.extend(shlex.split(line))
                command_seen.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    endpoint: FloodlightEndpoint | None = None
    try:
        assert command_seen.wait(180), "no restart command on stderr:\n" + "".join(stderr_lines)
        # The exact command: the JVM flags, the jar, and -cf with the user's file.
        assert command[0] == "java" and command[-2:] == ["-cf", str(properties)], command
        assert "-Dcom.sun.net.ssl.checkRevocation=true" in command
        security = next(f for f in command if f.startswith("-Djava.security.properties="))
        assert Path(security.split("=", 1)[1]).read_text() == "ocsp.enable=true\n"
        prompt = "".join(stderr_lines)
        port = int(re.search(r"on port (\d+) \(https://localhost:(\d+)\)", prompt).group(1))  # type: ignore[union-attr]
        # "Restart Floodlight": a controller loading exactly what the properties now name.
        props = PropertiesFile.load(properties)
        assert props.get(PREFIX + "httpsPort") == str(port)
        assert props.get(PREFIX + "useHttps") == "YES"
        keystore = props.get(PREFIX + "keyStorePath")
        password = props.get(PREFIX + "keyStorePassword")
        assert keystore and password
        endpoint = FloodlightEndpoint(
            keystore, Secret(password, "properties"), pkix_revocation=True, ocsp=True, port=port
        ).start()
        # communicate() reads stderr too: what it took from the reader thread is kept as well.
        out, rest = proc.communicate(timeout=420)
        stderr_lines.append(rest or "")
    finally:
        if endpoint is not None:
            endpoint.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    doc = json_transcript(out, "".join(stderr_lines), proc.returncode)  # stdout: the JSON transcript only
    assert proc.returncode == 0, "".join(stderr_lines)[-3000:]
    assert doc["ok"] is True, doc["steps"][-1]
    controller = next(s for s in doc["steps"] if s["step"] == "controller")
    assert controller["details"]["restart_command"] == " ".join(shlex.quote(c) for c in command)
    # Restored byte for byte, with its mode, and nothing left beside it.
    assert properties.read_bytes() == original
    assert properties.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in floodlight.iterdir()) == ["site.properties"]
    assert doc["floodlight_properties_restored"] is True
    assert f"restored {properties} to its content before the demo" in "".join(stderr_lines)


def test_restart_command_is_exact_and_quoted() -> None:
    cmd = restart_command(
        ["-Da=1", "-Djava.security.properties=/opt/my fl/x.security"], Path("/opt/my fl/f.properties")
    )
    assert shlex.split(cmd) == [
        "java", "-Da=1", "-Djava.security.properties=/opt/my fl/x.security", "-jar", "target/floodlight.jar",
        "-cf", "/opt/my fl/f.properties",
    ]  # fmt: skip
    assert url_host("::1") == "[::1]" and url_host("10.0.0.1") == "10.0.0.1"
