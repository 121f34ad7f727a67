"""Policy language at Keylime scale: 100,000-entry reference lists and measurement lists.

These rows isolate the policy stage: compiling reference lists, and evaluating PRE-BUILT claims (no
list parsing, no hashing, no PCR replay). They are not comparable with Keylime's end-to-end figures
(its 0.87 s for a 100,000-entry log includes parsing and hashing): the like-for-like comparison is
the ima suite. Memory is the peak RSS of a fresh process. Timings are medians of interleaved rounds.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import Result, fresh_process, interleaved
from floodlight_trust.claims import ClaimSet, ImaClaims, SignatureStatus
from floodlight_trust.policy_files import load_policy

N = 100_000
EXCLUDED = 1_000  # entries of the measurement list that fall under exclude patterns


def _digest(i: int) -> str:
    return hashlib.sha256(i.to_bytes(8, "big")).hexdigest()


def _path(i: int) -> str:
    return f"/usr/lib/pkg{i % 997}/sub{i % 31}/file{i}.so"


def _write_fixtures(root: Path) -> None:
    lines = [f"{_digest(i)}  {_path(i)}\n" for i in range(N)]
    (root / "ref.sha256sum").write_text("".join(lines))
    excludes = []
    for k in range(25):  # 25 globs + 25 regexes = 50 exclude patterns
        excludes.append(f'    exclude "/var/lib/containers/storage{k}/**"')
        excludes.append(f'    exclude regex "/proc/{k}[0-9]*/"')
    # Whole-list rules too: 5 required files (early in the list) and 5 required globs.
    required = [f'    require measured "{_path(i)}"' for i in range(0, 500, 100)]
    required += [f'    require measured "/usr/lib/pkg{k}/sub*/*.so"' for k in range(5)]
    (root / "host.policy").write_text(
        'host h {\n    template in {"ima-ng"}\n    include sha256sum "ref.sha256sum"\n'
        + "\n".join(excludes + required)
        + "\n}\n"
    )
    doc = {
        "meta": {"version": 1, "generator": 3},
        "release": 0,
        "digests": {_path(i): [_digest(i)] for i in range(N)},
        "excludes": [],
        "keyrings": {},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": None},
        "ima-buf": {},
        "verification-keys": "",
    }
    (root / "rp.json").write_text(json.dumps(doc))
    (root / "keylime.policy").write_text('host h {\n    include keylime "rp.json"\n}\n')


def _claims() -> ClaimSet:
    paths = [_path(i) for i in range(N - EXCLUDED)]
    digests = [_digest(i) for i in range(N - EXCLUDED)]
    for k in range(EXCLUDED):
        paths.append(f"/var/lib/containers/storage{k % 25}/overlay/l{k}/usr/bin/tool")
        digests.append(_digest(N + k))
    ima = ImaClaims(
        templates=["ima-ng"] * N,
        paths=paths,
        digest_algorithms=["sha256"] * N,
        digests=digests,
        signatures=[SignatureStatus.NONE] * N,
        signature_key_ids=[None] * N,
        log_hash_algorithm="sha1",  # as the appraisal of a classic (sha1 template hash) list says
    )
    return ClaimSet(verified_at=datetime(2025, 6, 20, tzinfo=UTC), ima=ima)


def _split(claims: ClaimSet, at: int) -> tuple[ClaimSet, ClaimSet]:
    ima = claims.ima
    assert ima is not None
    parts = []
    for lo, hi in ((0, at), (at, len(ima))):
        parts.append(
            ClaimSet(
                verified_at=claims.verified_at,
                ima=ImaClaims(
                    templates=ima.templates[lo:hi],
                    paths=ima.paths[lo:hi],
                    digest_algorithms=ima.digest_algorithms[lo:hi],
                    digests=ima.digests[lo:hi],
                    signatures=ima.signatures[lo:hi],
                    signature_key_ids=ima.signature_key_ids[lo:hi],
                    first_index=lo,
                    log_hash_algorithm=ima.log_hash_algorithm,
                ),
            )
        )
    return parts[0], parts[1]


def _clear_reference_cache() -> None:
    from policy_lang import reference

    clear = getattr(reference, "clear_cache", None)
    if clear is not None:
        clear()


def fresh_compile_evaluate(directory: str) -> bool:
    """In a fresh process: compile the sha256sum policy and evaluate the 100k claims with it."""
    from floodlight_trust.policy_files import load_policy

    return bool(load_policy(Path(directory) / "host.policy").evaluate_host("h", _claims()).allowed)


def run() -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_fixtures(root)
        claims = _claims()
        policy = load_policy(root / "host.policy")
        decision = policy.evaluate_host("h", claims)
        assert decision.allowed, decision.reasons[:3]
        ima = claims.ima
        assert ima is not None
        bad = ClaimSet(
            verified_at=claims.verified_at,
            ima=ImaClaims(
                templates=ima.templates,
                paths=[*ima.paths[:-1], "/usr/bin/xyz"],
                digest_algorithms=ima.digest_algorithms,
                digests=ima.digests,
                signatures=ima.signatures,
                signature_key_ids=ima.signature_key_ids,
                log_hash_algorithm=ima.log_hash_algorithm,
            ),
        )
        denial = policy.evaluate_host("h", bad)
        assert not denial.allowed and "/usr/bin/xyz" in denial.reasons[0].message
        # Re-attestation: the first 99,000 entries judged in full, then a round of 1,000 appended
        # entries judged with the whole-list state (require measured seen in the first round).
        head, tail = _split(claims, N - 1_000)
        first, state = policy.evaluate_host_round("h", head)
        assert first.allowed and state is not None, first.reasons[:3]
        later, _ = policy.evaluate_host_round("h", tail, state)
        assert later.allowed and not later.reasons, later.reasons[:3]
        load_policy(root / "keylime.policy")

        def cold(name: str) -> Callable[[], object]:
            def load() -> object:
                _clear_reference_cache()
                return load_policy(root / name)

            return load

        t = interleaved({"compile": cold("host.policy"), "keylime_cold": cold("keylime.policy")}, rounds=5)
        load_policy(root / "host.policy")  # both lists compiled once: the rows below load them unchanged
        load_policy(root / "keylime.policy")
        t |= interleaved(
            {
                "keylime_unchanged": lambda: load_policy(root / "keylime.policy"),
                "sha256sum_unchanged": lambda: load_policy(root / "host.policy"),
                "eval": lambda: policy.evaluate_host("h", claims),
                "deny": lambda: policy.evaluate_host("h", bad),
                "round": lambda: policy.evaluate_host_round("h", tail, state),
            },
            rounds=5,
        )
        rss = fresh_process("benchmarks.bench_policy:fresh_compile_evaluate", str(root))
        assert rss["result"] is True
    peak = rss["peak_rss_mib"]
    claims_only = "pre-built claims (no parsing, no hashing, no PCR replay): not comparable with Keylime"
    return [
        Result(
            "compile 100k-entry sha256sum reference list (+50 excludes), cold",
            t["compile"],
            "s",
            "< 0.3 s",
            t["compile"] < 0.3,
            work="read + parse policy and list, compile (reference-list cache cleared first)",
        ),
        Result(
            "compile 100k-entry Keylime runtime policy, cold",
            t["keylime_cold"],
            "s",
            work="read + JSON + Keylime schema + compile (reference-list cache cleared first)",
        ),
        Result(
            "load the unchanged 100k-entry Keylime runtime policy again",
            t["keylime_unchanged"],
            "s",
            "< 0.05 s",
            t["keylime_unchanged"] < 0.05,
            work="load_policy as a reload or a fresh attestation does: read + hash every file, compiled "
            "reference lists reused when their content hash is unchanged",
        ),
        Result(
            "load the unchanged 100k-entry sha256sum policy again",
            t["sha256sum_unchanged"],
            "s",
            work="as above, for the sha256sum list with 50 excludes and 10 require rules",
        ),
        Result(
            "evaluate 100k-entry claims (allowlist + 50 excludes)",
            t["eval"],
            "s",
            "< 0.1 s",
            t["eval"] < 0.1,
            work="Policy.evaluate_host on " + claims_only,
        ),
        Result(
            "evaluate the same claims with one unknown file (deny)",
            t["deny"],
            "s",
            "< 0.1 s",
            t["deny"] < 0.1,
            work="as above, denied with its reason",
        ),
        Result(
            "incremental round: 1k appended entries with the whole-list state",
            t["round"],
            "s",
            work="Policy.evaluate_host_round on " + claims_only,
        ),
        Result(
            "peak RSS, fresh process: compile + evaluate 100k",
            peak,
            "MiB",
            work="new interpreter: imports + compile the sha256sum policy + build and evaluate 100k claims (VmHWM)",
        ),
    ]
