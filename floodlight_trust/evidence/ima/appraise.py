"""Appraise an IMA measurement list: template hashes, PCR 10 replay, signatures, incremental rounds.

Pure: bytes, keys and a previous state in; claims, findings and the next state out.

Incremental appraisal. :class:`ImaState` records how much of the list was appraised (entries and
bytes), the running PCR values per bank and SHA-256 over exactly the appraised bytes. The next
round checks that the list still starts with those bytes and appraises only what follows, so its
Python work is O(new entries). The prefix digest is SHA-256 over the consumed bytes because (a)
SHA-256 is collision resistant, so a changed prefix cannot keep its digest, (b) it is the same
value the Verification Manager binds into the quote when the list has no partial record, and (c)
the running hash object is kept with the in-memory state and extended with the new bytes only
(``copy()`` + ``update()``), so it is never recomputed while the verifier keeps the state. The
in-memory state also keeps a reference to the previous list so the prefix comparison is a memcmp
and a change is located exactly; a state restored from JSON re-hashes the prefix once (C speed).
The running PCR values alone would not do: checking them needs a replay of the whole prefix.

Saved SHA-256 states. The running hash is a :class:`Sha256State`, whose state ``to_json`` keeps
(``prefix_state``); a state restored from JSON knows its prefix only by that hash
(:meth:`ImaState.resume_point`: a :class:`ListBytes` with an *unheld* prefix and the hash to extend),
so a verifier that has checked, through a quote's binding, that the whole list is that prefix
followed by a tail can appraise the tail alone after a restart (docs/protocol.md).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from floodlight_trust.claims import ImaClaims, SignatureStatus
from floodlight_trust.errors import FtrustError, InputError, Location, ParseError, VerificationError
from floodlight_trust.evidence.ima import ascii as ascii_list
from floodlight_trust.evidence.ima import binary as binary_list
from floodlight_trust.evidence.ima import bulkhash
from floodlight_trust.evidence.ima.batch import Batch
from floodlight_trust.evidence.ima.sha256state import Sha256State
from floodlight_trust.evidence.ima.templates import (
    BANK_BY_SIZE,
    BANKS,
    DIGEST_SIZES,
    HASHERS,
    split_digest_field,
    template_fields,
    unpack_template_data,
)
from floodlight_trust.reasons import Reason

if TYPE_CHECKING:  # signatures.py (and cryptography) is imported on the first entry with a signature
    from floodlight_trust.evidence.ima.signatures import Keyring, KeyringEntry, SignatureCheck, SignatureProblem

PCR = 10  # the IMA PCR whose values are reported and compared


class ImaPrefixChanged(VerificationError):
    """The part of the list appraised in an earlier round is no longer the same."""


class ImaPrefixNotHeld(InputError):
    """The list's first bytes are known only by their SHA-256 state and this appraisal needs them
    (it does not continue the state they were saved with): the caller asks for the whole list."""


class FindingKind(StrEnum):
    TEMPLATE_HASH_MISMATCH = "template-hash-mismatch"
    VIOLATION = "violation"
    PARTIAL_RECORD = "partial-record"
    PCR_MISMATCH = "pcr-mismatch"
    SIGNATURE_INVALID = "signature-invalid"  # a key with the signature's id does not verify it
    SIGNATURE_MALFORMED = "signature-malformed"  # the header is wrong (e.g. its length is not the bytes that follow)
    SIGNATURE_UNSUPPORTED = "signature-unsupported"  # the key type or hash cannot be verified here


def _problem_kind(problem: SignatureProblem | None) -> FindingKind:
    from floodlight_trust.evidence.ima.signatures import SignatureProblem

    if problem is SignatureProblem.MALFORMED:
        return FindingKind.SIGNATURE_MALFORMED
    if problem is SignatureProblem.UNSUPPORTED:
        return FindingKind.SIGNATURE_UNSUPPORTED
    return FindingKind.SIGNATURE_INVALID


class _KeyringOnce:
    """The keyring of one appraisal, built on the first entry that has a signature to check."""

    __slots__ = ("_entries", "_keyring")

    def __init__(self, entries: Sequence[KeyringEntry]):
        self._entries = entries
        self._keyring: Keyring | None = None

    def get(self) -> Keyring:
        if self._keyring is None:
            from floodlight_trust.evidence.ima.signatures import Keyring

            self._keyring = Keyring(self._entries)
        return self._keyring


@dataclass(frozen=True, slots=True)
class ImaFinding:
    kind: FindingKind
    message: str
    location: Location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        loc = {k: getattr(self.location, k) for k in ("file", "line", "offset", "index")}
        return {"kind": self.kind.value, "message": self.message, **{k: v for k, v in loc.items() if v is not None}}

    def reason(self) -> Reason:
        """This finding as a deny-level reason, coded ``ima.<kind>``."""
        return Reason(f"ima.{self.kind.value}", self.message, str(self.location) or None, self.to_json())


class ListBytes:
    """An IMA list held as the chunks it arrived in (a verifier that receives only what was appended
    each round), joined only when one contiguous copy is needed. Chunks are immutable ``bytes``: a
    list that holds the very chunk objects of another, first, provably starts with its bytes.

    A list may start with ``unheld`` bytes the holder does not have (:meth:`unheld_prefix`): those
    of an :class:`ImaState` restored from JSON, known only by its saved SHA-256 state. Such a list
    cannot be joined (``complete`` is False); it is what a verifier appends a received tail to after
    checking, by the quote's binding, that the whole list is that prefix followed by the tail."""

    __slots__ = ("__weakref__", "_compacted", "_joined", "_length", "_prefix_hash", "_root", "chunks", "unheld")
    MAX_CHUNKS = 64  # then the next append joins them (once every 64 rounds)

    def __init__(self, chunks: tuple[bytes, ...], *, unheld: int = 0, _root: object | None = None):
        self.chunks = chunks
        self.unheld = unheld
        # The unheld prefix's identity: one token per unheld_prefix(), shared by every list appended to it.
        self._root = _root if unheld else None
        # The list whose chunks this one's first chunk joins (a weak reference: its bytes are not kept).
        self._compacted: weakref.ref[ListBytes] | None = None
        self._length = unheld + sum(map(len, chunks))
        self._joined: bytes | None = chunks[0] if (len(chunks) == 1 and not unheld) else None
        self._prefix_hash: dict[int, Sha256State] = {}  # n -> SHA-256 over the first n bytes

    @classmethod
    def unheld_prefix(cls, length: int) -> ListBytes:
        """A list of ``length`` bytes none of which is held (appended to, it is a prefix + tails)."""
        return cls((), unheld=length, _root=object()) if length else cls(())

    @property
    def complete(self) -> bool:
        """Every byte is held (the list can be joined)."""
        return not self.unheld

    def sha256(self, *, snapshot_at: int | None = None) -> Sha256State:
        """A SHA-256 over the whole list. With ``snapshot_at`` (the ``byte_length`` of a
        persisted :class:`ImaState`), the same pass keeps the hash of that prefix, and an appraisal
        of this list from that state uses it instead of hashing the prefix again: a verifier that
        hashes the whole list anyway (to check the quote's binding) reads it once after a restart."""
        data = self.join()
        n = snapshot_at
        if n is None or not 0 < n <= len(data):
            h = Sha256State(data)
        else:
            view = memoryview(data)
            h = Sha256State(view[:n])
            self._prefix_hash[n] = h.copy()
            h.update(view[n:])
        self._prefix_hash[len(data)] = h.copy()  # an appraisal consuming the whole list reuses it
        return h

    def keep_sha256(self, whole: Sha256State) -> None:
        """Keep ``whole``, the SHA-256 of this whole list computed by the caller (the running hash
        extended by the last chunk), so that an appraisal consuming all of it does not hash the
        chunk again."""
        if whole.length != len(self):
            raise ValueError("the SHA-256 does not cover this list")
        self._prefix_hash[len(self)] = whole.copy()

    def prefix_sha256(self, n: int) -> Sha256State | None:
        """The SHA-256 over the first ``n`` bytes kept by :meth:`sha256` or :meth:`keep_sha256`, if kept."""
        held = self._prefix_hash.get(n)
        return held.copy() if held is not None else None

    def __len__(self) -> int:
        return self._length

    def join(self) -> bytes:
        """The whole list as one ``bytes``; InputError when its first bytes are not held."""
        if self.unheld:
            raise ImaPrefixNotHeld(
                f"the first {self.unheld} bytes of this IMA list are known only by their SHA-256: "
                "the whole list is needed"
            )
        if self._joined is None:
            self._joined = b"".join(self.chunks)
        return self._joined

    def append(self, tail: bytes) -> ListBytes:
        """This list followed by ``tail`` (the chunks are shared, not copied; past ``MAX_CHUNKS``
        they are joined into one, and the new list remembers that it extends this one)."""
        if len(self.chunks) >= self.MAX_CHUNKS:
            joined = ListBytes((b"".join(self.chunks), tail), unheld=self.unheld, _root=self._root)
            joined._compacted = weakref.ref(self)
            return joined
        return ListBytes((*self.chunks, tail), unheld=self.unheld, _root=self._root)

    def extends(self, prefix: ListBytes) -> bool:
        """True if this list starts with exactly ``prefix``'s chunk objects (so with its bytes) and
        the same unheld prefix. An unheld prefix is the same only in lists appended to one
        :meth:`unheld_prefix` object, which is where a verifier keeps its chunks."""
        if self._compacted is not None and self._compacted() is prefix:  # its chunks, joined into our first
            return True
        k = len(prefix.chunks)
        if self.unheld != prefix.unheld or self._root is not prefix._root or len(self.chunks) < k:
            return False
        return all(a is b for a, b in zip(self.chunks, prefix.chunks, strict=False))

    def after(self, prefix: ListBytes) -> bytes:
        """The bytes following ``prefix`` (which this list ``extends``)."""
        compacted = self._compacted is not None and self._compacted() is prefix
        rest = self.chunks[1:] if compacted else self.chunks[len(prefix.chunks) :]
        return rest[0] if len(rest) == 1 else b"".join(rest)


@dataclass(frozen=True)
class ImaState:
    """Where the previous round stopped. Keep it between rounds; ``to_json`` to persist it."""

    entry_count: int = 0
    byte_length: int = 0
    pcrs: Mapping[int, Mapping[str, str]] = field(default_factory=dict)  # PCR -> bank -> hex
    prefix_sha256: str = hashlib.sha256().hexdigest()
    format: str = ""  # "ascii" or "binary" ("" before the first round)
    hash_size: int = 0  # template-hash size of the list (its bank)
    boot_aggregate: str | None = None
    # In memory only: the previous list (for an exact, memcmp-speed prefix check) and the running
    # SHA-256 over the consumed bytes (extended next round without re-hashing the prefix).
    _previous: bytes | ListBytes | None = field(default=None, compare=False, repr=False)
    _hasher: Any = field(default=None, compare=False, repr=False)

    @property
    def pcr_values(self) -> Mapping[str, str]:
        """Running PCR 10 value per bank."""
        return self.pcrs.get(PCR, {})

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "entry_count": self.entry_count,
            "byte_length": self.byte_length,
            "pcrs": {str(p): dict(v) for p, v in self.pcrs.items()},
            "prefix_sha256": self.prefix_sha256,
            "format": self.format,
            "hash_size": self.hash_size,
            "boot_aggregate": self.boot_aggregate,
        }
        saved = self._hasher.saved if isinstance(self._hasher, Sha256State) else None
        if saved is not None and self._hasher.length == self.byte_length:
            doc["prefix_state"] = saved.hex()  # the SHA-256 state after the prefix: resumable
        return doc

    def appraised_from(self, data: ListBytes) -> bool:
        """This state is the one its round left after appraising exactly ``data`` (kept in memory)."""
        return self._previous is data

    def resume_point(self) -> tuple[ListBytes, Sha256State] | None:
        """For a state restored from JSON with its saved SHA-256 state: the list of its prefix
        (``byte_length`` unheld bytes) and the hash over it, to which the caller appends a tail
        once the quote's binding has shown that the whole list is that prefix and the tail.
        :func:`appraise_measurement_list` then appraises the tail alone. None: not resumable."""
        previous, hasher = self._previous, self._hasher
        if isinstance(previous, ListBytes) and not previous.complete and isinstance(hasher, Sha256State):
            return previous, hasher
        return None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ImaState:
        """The state ``to_json`` wrote. Its saved SHA-256 state, if any, is kept only when it
        covers exactly ``byte_length`` bytes and hashes to ``prefix_sha256`` (:meth:`resume_point`)."""
        try:
            pcrs = {int(p): {str(b): str(v) for b, v in banks.items()} for p, banks in d["pcrs"].items()}
            state = cls(
                entry_count=int(d["entry_count"]),
                byte_length=int(d["byte_length"]),
                pcrs=pcrs,
                prefix_sha256=str(d["prefix_sha256"]),
                format=str(d["format"]),
                hash_size=int(d["hash_size"]),
                boot_aggregate=d.get("boot_aggregate"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"IMA state: missing or malformed value ({e})") from None
        if state.format not in ("", "ascii", "binary") or state.entry_count < 0 or state.byte_length < 0:
            raise InputError("IMA state: malformed format or counts")
        if state.hash_size and state.hash_size not in BANK_BY_SIZE:  # 0: not known yet
            raise InputError(f"IMA state: no template-hash bank has {state.hash_size}-byte hashes")
        saved = d.get("prefix_state")
        if isinstance(saved, str) and state.byte_length:
            try:
                hasher = Sha256State.restore(
                    bytes.fromhex(saved), length=state.byte_length, sha256_hex=state.prefix_sha256
                )
            except (ValueError, InputError):
                return state  # not usable: the prefix is checked by its SHA-256 (the whole list is needed)
            return replace(state, _previous=ListBytes.unheld_prefix(state.byte_length), _hasher=hasher)
        return state


@dataclass(frozen=True)
class ImaAppraisal:
    claims: ImaClaims  # the entries new in this round
    state: ImaState
    findings: tuple[ImaFinding, ...]
    ok: bool  # every template hash matched and every expected PCR value was met
    entry_count: int  # entries in the whole list so far

    def first_problem(self) -> ImaFinding | None:
        for f in self.findings:
            if f.kind in (FindingKind.TEMPLATE_HASH_MISMATCH, FindingKind.PCR_MISMATCH):
                return f
        return None


def appraise_measurement_list(
    data: bytes | ListBytes,
    *,
    state: ImaState | None = None,
    banks: Sequence[str] = ("sha1", "sha256"),
    keyring: Sequence[KeyringEntry] = (),
    expected_pcrs: Mapping[str, str] | None = None,
    source: str | None = None,
) -> ImaAppraisal:
    """Appraise an ASCII or binary measurement list (autodetected), or what was appended to it
    since ``state``.

    Guarantees: every new entry's template hash is recomputed and compared (a mismatch is a finding
    and makes ``ok`` false); PCR 10 is replayed into ``banks`` (violations extend all-0xFF);
    signatures are checked against ``keyring`` (certificates and bare public keys); with ``state``, raises :class:`ImaPrefixChanged`
    if the already appraised bytes changed. Malformed input raises ParseError located by line or
    byte offset and entry index; ``source`` names the file in locations.

    ``data`` may be a :class:`ListBytes`: when it holds the chunks of the list ``state`` was
    appraised from (and that round consumed all of it), the prefix is known unchanged without
    comparing it and only the new chunks are read, so a round costs O(new bytes).
    """
    try:
        if isinstance(data, ListBytes):
            previous = state._previous if state is not None else None
            if (
                state is not None
                and isinstance(previous, ListBytes)
                and state._hasher is not None
                and len(previous) == state.byte_length
                and data.extends(previous)
            ):
                tail = data.after(previous)
                return _appraise(tail, state, banks, keyring, expected_pcrs, source, whole=data, tail_only=True)
            return _appraise(data.join(), state, banks, keyring, expected_pcrs, source, whole=data)
        return _appraise(bytes(data), state, banks, keyring, expected_pcrs, source)
    except FtrustError as e:
        if source:
            e.with_file(source)
        raise


def _appraise(
    data: bytes,
    state: ImaState | None,
    banks: Sequence[str],
    keyring_certs: Sequence[KeyringEntry],
    expected_pcrs: Mapping[str, str] | None,
    source: str | None,
    whole: ListBytes | None = None,
    tail_only: bool = False,
) -> ImaAppraisal:
    """Appraise ``data``: the whole list, or (``tail_only``) exactly the bytes of ``whole`` after the
    ``state.byte_length`` bytes ``state`` consumed, ``whole`` holding the chunks of that prefix."""
    banks = tuple(dict.fromkeys(banks))
    for bank in banks:
        if bank not in BANKS:
            raise InputError(f"unknown PCR bank {bank!r}", hint="one of " + ", ".join(BANKS))
    for bank in expected_pcrs or {}:
        if bank not in banks:
            raise InputError(f"expected PCR value for bank {bank!r}, which is not replayed", hint="add it to banks")
    state = state or ImaState()
    pcrs: dict[int, dict[str, bytes]] = {
        p: {b: bytes.fromhex(v) for b, v in bv.items()} for p, bv in state.pcrs.items()
    }
    if state.entry_count:
        missing = [b for b in banks if b not in pcrs.get(PCR, {})]
        if missing:
            raise InputError(
                f"the saved IMA state has no running value for bank {missing[0]}",
                hint="appraise the whole list again (without the state) to add a bank",
            )
    n0 = state.byte_length
    # Tail only: data holds the bytes after the n0 the state consumed (offsets stay whole-list ones).
    skip = 0 if tail_only else n0
    if tail_only:
        hasher = state._hasher.copy()  # the prefix is made of whole's own chunks: unchanged by construction
    else:
        hasher = _check_prefix(data, state, source, whole)

    fmt = state.format or ("binary" if binary_list.looks_binary(data) else "ascii")
    hash_size = state.hash_size
    if fmt == "binary":
        if not hash_size:
            hash_size = binary_list.detect_hash_size(data) or 0
            if not hash_size:
                raise ParseError(
                    "not an IMA measurement list: no known template name after a 20, 32, 48 or 64-byte hash",
                    location=Location(offset=0, index=0),
                )
        batches = binary_list.parse_binary(
            data, hash_size=hash_size, base=n0 - skip, start=skip, first_index=state.entry_count
        )
    else:
        batches = ascii_list.parse_ascii(
            data[skip:] if skip else data,
            base=n0,
            first_index=state.entry_count,
            first_line=state.entry_count + 1,
            hash_size=hash_size,
        )

    keyring = _KeyringOnce(keyring_certs)
    out = _Columns()
    findings: list[ImaFinding] = []
    boot_aggregate = state.boot_aggregate
    end = n0
    count = state.entry_count
    for batch in batches:
        if len(batch):
            if not hash_size:
                hash_size = len(batch.hashes) // len(batch) - len(batch.hash_prefix)
            _appraise_batch(batch, fmt, hash_size, banks, pcrs, keyring, out, findings, source)
            if boot_aggregate is None and batch.first_index == 0 and batch.paths[0] == "boot_aggregate":
                boot_aggregate = batch.digests[0]
            count += len(batch)
        end = batch.end
        if batch.partial:
            findings.append(
                ImaFinding(
                    FindingKind.PARTIAL_RECORD,
                    f"partial trailing record: {batch.partial}",
                    _loc(fmt, source, batch.partial_position, count),
                )
            )

    kept = whole.prefix_sha256(end) if whole is not None else None
    if kept is not None:  # the caller hashed exactly these bytes already (the quote's binding)
        hasher = kept
    else:
        hasher.update(memoryview(data)[n0 - (n0 - skip) : end - (n0 - skip)])
    pcr_hex = {p: {b: v.hex() for b, v in bv.items()} for p, bv in pcrs.items()}
    for bank in banks:  # an empty list still has PCR 10 at its reset value
        pcr_hex.setdefault(PCR, {}).setdefault(bank, bytes(DIGEST_SIZES[bank]).hex())
    running = pcr_hex[PCR]
    for bank, want in (expected_pcrs or {}).items():
        want = want.lower().removeprefix("0x")
        if running[bank] != want:
            findings.append(
                ImaFinding(
                    FindingKind.PCR_MISMATCH,
                    f"PCR {PCR} {bank} replays to {running[bank]}, expected {want}",
                    Location(file=source),
                )
            )
    new_state = ImaState(
        entry_count=count,
        byte_length=end,
        pcrs=pcr_hex,
        prefix_sha256=hasher.copy().hexdigest(),
        format=fmt,
        hash_size=hash_size,
        boot_aggregate=boot_aggregate,
        _previous=whole if whole is not None else data,
        _hasher=hasher,
    )
    claims = ImaClaims(
        templates=out.templates,
        paths=out.paths,
        digest_algorithms=out.algos,
        digests=out.digests,
        signatures=out.signatures,
        signature_key_ids=out.key_ids,
        violations=frozenset(out.violations),
        first_index=state.entry_count,
        boot_aggregate=boot_aggregate,
        pcr_values=dict(running),
        log_hash_algorithm=BANK_BY_SIZE.get(hash_size),
    )
    ok = not any(f.kind in (FindingKind.TEMPLATE_HASH_MISMATCH, FindingKind.PCR_MISMATCH) for f in findings)
    return ImaAppraisal(claims=claims, state=new_state, findings=tuple(findings), ok=ok, entry_count=count)


def _loc(fmt: str, source: str | None, position: int | None, index: int) -> Location:
    if fmt == "ascii":
        return Location(file=source, line=position, index=index)
    return Location(file=source, offset=position, index=index)


def _check_prefix(data: bytes, state: ImaState, source: str | None, whole: ListBytes | None = None) -> Any:
    """A SHA-256 object over the already appraised prefix, after checking it is unchanged. ``whole``
    (the ListBytes ``data`` was joined from) may hold that prefix's hash already."""
    n = state.byte_length
    if n == 0:
        return Sha256State()
    if len(data) < n:
        raise ImaPrefixChanged(
            f"the list has {len(data)} bytes, fewer than the {n} bytes ({state.entry_count} entries) "
            "appraised before: it was truncated or the host rebooted",
            location=Location(file=source),
        )
    previous = state._previous
    if isinstance(previous, ListBytes):
        previous = previous.join() if previous.complete else None  # unheld: checked by its SHA-256 below
    if previous is not None and len(previous) >= n and state._hasher is not None:
        if data.startswith(memoryview(previous)[:n]):
            return state._hasher.copy()
        raise _changed_at(data, previous, n, state, source)
    held = whole.prefix_sha256(n) if whole is not None and whole.join() is data else None
    hasher = held if held is not None else Sha256State(memoryview(data)[:n])
    if hasher.hexdigest() != state.prefix_sha256:
        raise ImaPrefixChanged(
            f"the first {state.entry_count} entries ({n} bytes) appraised before have changed: their SHA-256 "
            f"is {hasher.hexdigest()}, the saved state has {state.prefix_sha256}",
            location=Location(file=source),
            hint="the first differing entry is named when the verifier keeps the state in memory between rounds",
        )
    return hasher


def _changed_at(data: bytes, previous: bytes, n: int, state: ImaState, source: str | None) -> ImaPrefixChanged:
    lo, hi = 0, n  # binary search for the first differing byte: memcmp on halves
    while hi - lo > 64:
        mid = (lo + hi) // 2
        if memoryview(data)[lo:mid] == memoryview(previous)[lo:mid]:
            lo = mid
        else:
            hi = mid
    first = lo + next(i for i in range(hi - lo) if data[lo + i] != previous[lo + i])
    if state.format == "ascii":
        line = previous.count(b"\n", 0, first) + 1
        where = Location(file=source, line=line, index=line - 1)
    else:
        index, start = _binary_record_at(previous[:n], state.hash_size, first)
        where = Location(file=source, offset=start, index=index)
    return ImaPrefixChanged(
        f"entry {where.index}, appraised in an earlier round, has changed (first differing byte at offset {first})",
        location=where,
    )


def _binary_record_at(prefix: bytes, hash_size: int, offset: int) -> tuple[int, int]:
    index, start = 0, 0
    for batch in binary_list.parse_binary(prefix, hash_size=hash_size):
        for i, pos in enumerate(batch.positions):
            if pos > offset:
                return index, start
            index, start = batch.first_index + i, pos
    return index, start


class _Columns:
    __slots__ = ("algos", "digests", "key_ids", "paths", "signatures", "templates", "violations")

    def __init__(self) -> None:
        self.templates: list[str] = []
        self.paths: list[str] = []
        self.algos: list[str] = []
        self.digests: list[str] = []
        self.signatures: list[SignatureStatus] = []
        self.key_ids: list[str | None] = []
        self.violations: list[int] = []


def _appraise_batch(
    batch: Batch,
    fmt: str,
    hash_size: int,
    banks: Sequence[str],
    pcrs: dict[int, dict[str, bytes]],
    keyring_once: _KeyringOnce,
    out: _Columns,
    findings: list[ImaFinding],
    source: str | None,
) -> None:
    n = len(batch)
    log_bank = BANK_BY_SIZE[hash_size]
    prefix = batch.hash_prefix
    # Every template hash of the batch, laid out as the logged ones: one comparison checks them all.
    computed = bulkhash.digests(log_bank, batch.inputs, prefix)
    violations: list[int] = []
    if computed == batch.hashes and batch.pcrs.count(PCR) == n:
        # The common case: every hash as logged, every entry in PCR 10. Each bank is replayed in one
        # call, the log's bank from the checked hashes, any other from its own template hashes.
        bank_values = pcrs.setdefault(PCR, {})
        for bank in banks:
            value = bank_values.get(bank) or bytes(DIGEST_SIZES[bank])
            if bank == log_bank:
                value = bulkhash.extend(bank, value, computed, len(prefix) + hash_size, len(prefix))
            else:
                value = bulkhash.replay(bank, value, batch.inputs)
            bank_values[bank] = value
    else:
        step = len(prefix) + hash_size
        mine = [computed[k : k + hash_size] for k in range(len(prefix), len(computed), step)]
        hashes = batch.logged(hash_size)
        zero = bytes(hash_size)
        for i, (logged, ours) in enumerate(zip(hashes, mine, strict=True)):
            if logged == ours:
                continue
            index = batch.first_index + i
            where = _loc(fmt, source, batch.positions[i], index)
            if logged == zero:
                violations.append(i)
                findings.append(
                    ImaFinding(
                        FindingKind.VIOLATION,
                        f"measurement violation recorded for {batch.paths[i]!r} (extended as all 0xFF)",
                        where,
                    )
                )
            else:
                findings.append(
                    ImaFinding(
                        FindingKind.TEMPLATE_HASH_MISMATCH,
                        f"template hash mismatch for {batch.paths[i]!r}: the log says {logged.hex()}, "
                        f"the template data hashes to {ours.hex()}",
                        where,
                    )
                )
        for bank in banks:
            if bank == log_bank:
                values = list(hashes)  # the logged ones (equal to ours but where a finding says otherwise)
            else:
                size = DIGEST_SIZES[bank]
                joined = bulkhash.digests(bank, batch.inputs)
                values = [joined[k : k + size] for k in range(0, len(joined), size)]
            ff = b"\xff" * DIGEST_SIZES[bank]
            for i in violations:
                values[i] = ff
            _extend(pcrs, bank, batch.pcrs, values)

    out.templates.extend(batch.templates)
    out.paths.extend(batch.paths)
    out.algos.extend(batch.algos)
    out.digests.extend(batch.digests)
    offset = len(out.paths) - n  # position of this batch in the round's claims
    out.violations.extend(offset + i for i in violations)
    sigs = batch.sigs
    if sigs.count(b"") == n and not batch.other_sigs:
        out.signatures.extend([SignatureStatus.NONE] * n)
        out.key_ids.extend([None] * n)
        return
    from floodlight_trust.evidence.ima.signatures import SignatureCheck

    keyring = keyring_once.get()
    other = set(batch.other_sigs)
    for i in range(n):
        sig = sigs[i]
        check = SignatureCheck(SignatureStatus.NONE, None, "")
        if sig:
            check = keyring.verify(sig, batch.algos[i], bytes.fromhex(batch.digests[i]))
        if i in other and (not sig or check.status is SignatureStatus.UNKNOWN_KEY):
            # As the kernel does: an appended signature counts when there is no file signature or
            # its key is unknown; an evm-sig entry's signature is the one it has.
            check = _other_signature(batch.templates[i], batch.inputs[i], keyring)
        out.signatures.append(check.status)
        out.key_ids.append(check.key_id)
        if check.status is SignatureStatus.INVALID:
            findings.append(
                ImaFinding(
                    _problem_kind(check.problem),
                    f"signature of {batch.paths[i]!r}: {check.reason}",
                    _loc(fmt, source, batch.positions[i], batch.first_index + i),
                )
            )


def _other_signature(template: str, data: bytes, keyring: Keyring) -> SignatureCheck:
    """The ``modsig`` or ``evmsig`` of an entry, from its template data."""
    from floodlight_trust.evidence.ima.signatures import SignatureCheck, SignatureProblem

    ids = template_fields(template)
    assert ids is not None  # the readers only pass known templates
    f = dict(zip(ids, unpack_template_data(data, len(ids)), strict=True))
    if f.get("modsig"):
        algo, digest = split_digest_field(f.get("d-modsig", b""))
        return keyring.verify_modsig(f["modsig"], algo, digest)
    sig = f["evmsig"]
    missing = [k for k in ("xattrvalues", "iuid", "igid", "imode") if k not in f]
    if missing:
        return SignatureCheck(SignatureStatus.UNCHECKED, None, f"the template does not record {', '.join(missing)}")
    values, lengths = f["xattrvalues"], f.get("xattrlengths", b"")
    if len(lengths) % 4 or sum(int.from_bytes(lengths[k : k + 4], "little") for k in range(0, len(lengths), 4)) != len(
        values
    ):
        return SignatureCheck(
            SignatureStatus.INVALID, None, "xattrlengths do not add up to the xattrvalues", SignatureProblem.MALFORMED
        )
    uid, gid, mode = (int.from_bytes(f[k], "little") for k in ("iuid", "igid", "imode"))
    return keyring.verify_evmsig(sig, values, uid, gid, mode)


def _extend(pcrs: dict[int, dict[str, bytes]], bank: str, indexes: list[int], values: list[bytes]) -> None:
    h = HASHERS[bank]
    if indexes.count(PCR) == len(indexes):
        bank_values = pcrs.setdefault(PCR, {})
        value = bank_values.get(bank) or bytes(DIGEST_SIZES[bank])
        for v in values:
            value = h(value + v).digest()
        bank_values[bank] = value
        return
    for pcr, v in zip(indexes, values, strict=True):
        bank_values = pcrs.setdefault(pcr, {})
        bank_values[bank] = h((bank_values.get(bank) or bytes(DIGEST_SIZES[bank])) + v).digest()
