"""Generated evidence at scale, shared by the benchmarks: an ima-ng ASCII measurement list and the
Keylime runtime policy (and sha256sum reference list) that allow every entry of it.

This is the setup issue 15 measured Keylime 7.14 with: one generated list and allowlist for both
verifiers. Generation is never inside a timed region.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

BOOT_DIGEST = hashlib.sha256(b"boot").digest()


def digest(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(8, "big")).digest()


def path(i: int) -> str:
    return f"/usr/lib/pkg{i % 997}/sub{i % 31}/file{i}.so"


def ima_lines(lo: int, hi: int) -> bytes:
    """ASCII lines (ima-ng, sha256 file digests, sha1 template hashes) of entries ``lo`` to ``hi``."""
    from floodlight_trust.evidence.ima import format_ascii_line, make_entry

    return "".join(format_ascii_line(make_entry(path(i), digest(i)), "sha1") for i in range(lo, hi)).encode()


def boot_line() -> bytes:
    from floodlight_trust.evidence.ima import format_ascii_line, make_entry

    return format_ascii_line(make_entry("boot_aggregate", BOOT_DIGEST), "sha1").encode()


def binary_list(n: int) -> bytes:
    from floodlight_trust.evidence.ima import make_entry, serialize_binary

    return serialize_binary(
        [make_entry("boot_aggregate", BOOT_DIGEST)] + [make_entry(path(i), digest(i)) for i in range(n)]
    )


def keylime_runtime_policy(n: int) -> str:
    """A Keylime runtime policy (format version 1) allowing entries ``0..n`` and boot_aggregate."""
    digests = {path(i): [digest(i).hex()] for i in range(n)}
    digests["boot_aggregate"] = [BOOT_DIGEST.hex()]
    doc = {
        "meta": {"version": 1, "generator": 3},
        "release": 0,
        "digests": digests,
        "excludes": [],
        "keyrings": {},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},  # template hashes: sha1
        "ima-buf": {},
        "verification-keys": "",
    }
    return json.dumps(doc)


def write_ima_setup(root: Path, n: int) -> dict[str, str]:
    """Write ``ima.log`` (boot_aggregate + n entries), ``rp.json`` (Keylime runtime policy for them) and
    ``host.policy`` (one host policy including it) under ``root``; return their paths."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ima.log").write_bytes(boot_line() + ima_lines(0, n))
    (root / "rp.json").write_text(keylime_runtime_policy(n))
    (root / "host.policy").write_text('host h {\n    template in {"ima-ng"}\n    include keylime "rp.json"\n}\n')
    return {k: str(root / f) for k, f in (("log", "ima.log"), ("keylime", "rp.json"), ("policy", "host.policy"))}


def sim_policy_text(image: bytes, files: Mapping[str, bytes]) -> str:
    """The policy the VM benchmarks run under: a host allowing ``files`` (path -> sha256) with the
    simulated integrity enclave, and VNFs ``vnf-*`` running ``image`` on the simulated signer."""
    from floodlight_trust.agent.backends.sim import INTEGRITY_ENCLAVE_IMAGE, SIM_SIGNER
    from floodlight_trust.sgxsim import measure_enclave_image

    allow = "\n".join(f'  allow "{p}" digest in {{"{d.hex()}"}}' for p, d in files.items())
    return f"""
host h {{
{allow}
  integrity_enclave = hi
}}
enclave hi {{
  identity: mrenclave in {{"{measure_enclave_image(INTEGRITY_ENCLAVE_IMAGE).hex()}"}}
  allow_simulated = true
}}
enclave e {{
  identity: mrenclave in {{"{measure_enclave_image(image).hex()}"}} and mrsigner in {{"{SIM_SIGNER.hex()}"}}
  allow_simulated = true
}}
enroll r for "vnf-*" {{ host = h  enclave = e }}
"""


def write_vm_site(
    root: Path,
    image: bytes,
    files: Mapping[str, bytes],
    *,
    storage_url: str,
    platform_dir: Path,
    vm_settings: str = "",
) -> Path:
    """Write what the `vm serve` benchmarks (bench_fleet, bench_replicas) run from under ``root``:
    ``site.policy`` (:func:`sim_policy_text` of ``image`` and ``files``) and ``ftrust.toml`` (0600):
    ``storage_url`` (empty: SQLite in the state directory), the state in ``root/state``, the VM on
    free ports trusting the simulated SGX roots in ``platform_dir``, and ``vm_settings`` (more
    ``[vm]`` lines). Returns the config's path."""
    (root / "site.policy").write_text(sim_policy_text(image, files))
    storage = f'[storage]\nurl = "{storage_url}"\n' if storage_url else ""
    config = root / "ftrust.toml"
    config.write_text(
        f"""{storage}[state]
dir = "{root / "state"}"
[vm]
port = 0
crl_port = 0
policy = "site.policy"
trust_simulated_sgx = true
simulated_sgx_roots = "{platform_dir}"
{vm_settings}"""
    )
    config.chmod(0o600)
    return config


def start_vm_serve(config: Path, env: Mapping[str, str], *options: str) -> tuple[subprocess.Popen[str], str]:
    """``ftrust --config CONFIG vm serve OPTIONS`` in a process of its own, from the repository:
    returns it and its API URL once it has printed it (a daemon thread drains what it prints next)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "floodlight_trust", "--config", str(config), "vm", "serve", *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=Path(__file__).resolve().parents[1],
        env=dict(env),
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("Verification Manager API on "):
        proc.kill()
        proc.wait(10)
        raise RuntimeError(f"{config}: vm serve did not start: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, line.split()[4]


def stop_processes(procs: list[subprocess.Popen[str]], timeout: float) -> None:
    """Terminate ``procs`` and wait for each (``timeout`` seconds, then kill it); empties the list."""
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    procs.clear()
