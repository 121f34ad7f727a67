"""The VNF enclave channel: what relaying a challenge through the VNF's own process costs.

The same quote (sim platform, DCAP v3) is made in the test process's enclave runtime directly and
through its Unix socket (a responder thread of this process, a fresh connection per request as the
agent makes it): the difference is the channel's cost per relayed challenge (JSON, schema checks
on both sides, one connection). An enrollment relays one challenge and one credentials message.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmarks import Result, interleaved
from floodlight_trust.enclave.channel import EnclaveChannel, EnclaveResponder
from floodlight_trust.enclave.platform import SimEnclave, SimulatedAttestation
from floodlight_trust.enclave.runtime import EnclaveRuntime
from floodlight_trust.sgxsim import SimulatedPlatform

N = 50
ROUNDS = 5


def run() -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        platform = SimulatedPlatform.create(Path(tmp) / "platform")
        enclave = SimEnclave(SimulatedAttestation(platform), b"bench VNF image", seal_secret=os.urandom(32))
        runtime = EnclaveRuntime.start("vnf-bench", enclave, None)
        responder = EnclaveResponder(runtime, Path(tmp) / "s" / "vnf-bench.sock").start()
        channel = EnclaveChannel("vnf-bench", responder.path)
        nonce = bytes(32)
        try:
            t = interleaved(
                {
                    "direct": lambda: runtime.evidence(nonce),
                    "socket": lambda: channel.evidence(nonce),
                    "info": channel.info,
                },
                rounds=ROUNDS,
                calls=N,
            )
        finally:
            responder.stop()
    overhead = (t["socket"] - t["direct"]) * 1000
    return [
        Result("enclave quote, in the enclave's process", t["direct"] * 1000, "ms", work="binding + sim DCAP quote"),
        Result(
            "enclave quote relayed over its Unix socket",
            t["socket"] * 1000,
            "ms",
            work="connect + JSON + schema checks both sides + the same quote",
        ),
        Result(
            "channel cost per relayed challenge",
            overhead,
            "ms",
            "< 10 ms (a relay must not show next to the VM's ~5 ms per enrollment at 200/s)",
            overhead < 10,
            anchor=f"direct {t['direct'] * 1000:.2f} ms",
        ),
        Result("enclave info over its socket", t["info"] * 1000, "ms", work="connect + JSON + schema checks"),
    ]
