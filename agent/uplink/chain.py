"""Tamper-evident events: each event links to the one before it, and the device signs the chain.

Every event carries ``hp``, the first 8 bytes of the SHA-256 of the previous event's payload (of
the same device, by sequence number), so an event cannot be altered, removed or slipped in without
breaking a link. Each health report also carries ``sg``, the device's ed25519 signature over
``[domain, device, seq, hp]``: it vouches for the whole chain before it, and the birth message names
the key (``kid``, ``pk``) and is signed too. ``verify`` is the reference check; ``edgectl events
verify`` runs it on a recorded stream, and docs/events.md shows how a platform does it.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.events import (
    HEALTH,
    EventFormatError,
    decode,
    decode_state,
    is_state,
)
from agent.trust.commands import canonical
from agent.trust.keys import DeviceKey, key_id, load_public
from agent.trust.keys import verify as verify_signature

CHAIN_DOMAIN = "edge-chain/1"  # what a chain-head signature covers; never valid as a command's
STATE_DOMAIN = "edge-state/1"
LINK_BYTES = 8


def link_of(payload: bytes) -> bytes:
    """What the next event carries as ``hp``: the first 8 bytes of this payload's SHA-256."""
    return hashlib.sha256(payload).digest()[:LINK_BYTES]


def head_bytes(device: str, seq: int, prev: bytes | None) -> bytes:
    """The bytes a chain-head signature covers: the event's place in the chain."""
    return msgpack.packb([CHAIN_DOMAIN, device, seq, prev or b""], use_bin_type=True)


def state_bytes(state: Mapping[str, Any]) -> bytes:
    """The bytes a state message's signature covers: the map without ``sig``, keys sorted."""
    body = {k: v for k, v in state.items() if k != "sig"}
    return msgpack.packb([STATE_DOMAIN, canonical(body)], use_bin_type=True)


def signed_state(state: dict[str, Any], key: DeviceKey) -> dict[str, Any]:
    """The state map with the device key named (``kid``, ``pk``) and ``sig`` over the rest."""
    out = {**state, "kid": key.id, "pk": key.public}
    out["sig"] = key.sign(state_bytes(out))
    return out


# ----- verification ---------------------------------------------------------------------------


@dataclass
class Finding:
    """One thing ``verify`` noticed; ``problem`` is False for what an honest stream may show too."""

    device: str
    seq: int | None
    what: str
    problem: bool = True


@dataclass
class DeviceChain:
    events: dict[int, bytes] = field(default_factory=dict)  # seq -> payload, first copy kept
    arrival: list[int] = field(default_factory=list)
    conflicts: set[int] = field(default_factory=set)
    keys: list[Ed25519PublicKey] = field(default_factory=list)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # device -> events seen
    verified: dict[str, int] = field(default_factory=dict)  # device -> events vouched for by a signature
    key_source: dict[str, str] = field(default_factory=dict)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.problem]


def verify(messages: Iterable[tuple[str, bytes]], trusted: Mapping[str, list[str]] | None = None) -> Report:
    """Check a recorded stream of (topic, payload): links, gaps, duplicates, order and signatures.

    ``trusted`` maps a device id to its public keys (base64). Without one, a device's key is taken
    from its signed birth message in the stream (trust on first use), and the report says so.
    """
    report = Report()
    chains: dict[str, DeviceChain] = {}
    for topic, payload in messages:
        try:
            raw = msgpack.unpackb(payload, raw=False)
        except Exception:
            report.findings.append(Finding("?", None, f"{topic}: not msgpack"))
            continue
        if is_state(raw):
            _state(report, chains, trusted, topic, payload)
            continue
        try:
            event = decode(payload)
        except EventFormatError as exc:
            report.findings.append(Finding("?", None, f"{topic}: not a valid event: {exc}"))
            continue
        chain = chains.setdefault(event.device, DeviceChain())
        chain.arrival.append(event.seq)
        first = chain.events.setdefault(event.seq, payload)
        if first != payload and event.seq not in chain.conflicts:
            chain.conflicts.add(event.seq)
            report.findings.append(
                Finding(
                    event.device,
                    event.seq,
                    "two different events with this sequence number: one is forged or altered",
                )
            )
    for device, chain in chains.items():
        if trusted and device in trusted:
            chain.keys = [load_public(k) for k in trusted[device]]
            report.key_source[device] = "given"
        _check_device(report, device, chain)
    return report


def _state(
    report: Report,
    chains: dict[str, DeviceChain],
    trusted: Mapping[str, list[str]] | None,
    topic: str,
    payload: bytes,
) -> None:
    try:
        state = decode_state(payload)
    except EventFormatError as exc:
        report.findings.append(Finding("?", None, f"{topic}: not a valid state message: {exc}"))
        return
    device = state["d"]
    chain = chains.setdefault(device, DeviceChain())
    sig, pk = state.get("sig"), state.get("pk")
    if sig is None:
        if state.get("online"):
            report.findings.append(Finding(device, None, "an unsigned birth message", problem=False))
        return  # the broker's last will is made at connect time and may predate a key
    keys = [load_public(k) for k in trusted[device]] if trusted and device in trusted else []
    if not keys and isinstance(pk, bytes) and len(pk) == 32:
        keys = [Ed25519PublicKey.from_public_bytes(pk)]
        if device not in report.key_source:
            report.key_source[device] = f"the birth message (key id {key_id(pk)}; trusted on first use)"
            chain.keys = keys
    if not isinstance(sig, bytes) or not verify_signature(keys, sig, state_bytes(state)):
        report.findings.append(
            Finding(device, None, "a state message whose signature does not verify: forged")
        )


def _check_device(report: Report, device: str, chain: DeviceChain) -> None:
    seqs = sorted(chain.events)
    report.checked[device] = len(seqs)
    events = {s: decode(p) for s, p in chain.events.items()}
    late = sum(1 for i, s in enumerate(chain.arrival) if i and s < max(chain.arrival[:i]))
    if late:
        report.findings.append(
            Finding(
                device,
                None,
                f"{late} events arrived after later ones (a replayed backlog does this)",
                problem=False,
            )
        )
    linked: dict[int, bool] = {}  # seq -> its payload is vouched for by the next event's hp
    for a, b in itertools.pairwise(seqs):
        if b != a + 1:
            report.findings.append(
                Finding(device, a + 1, f"gap: events {a + 1}..{b - 1} are missing ({b - a - 1})")
            )
            continue
        if events[b].prev != link_of(chain.events[a]):
            linked[a] = False
            report.findings.append(
                Finding(
                    device,
                    b,
                    f"broken link: event {b} does not follow event {a} (one of them was altered or forged)",
                )
            )
        else:
            linked[a] = True
    if not chain.keys:
        report.findings.append(
            Finding(device, None, "no key to check signatures with (give --key or record the birth message)")
        )
        return
    verified: set[int] = set()
    signed_heads = 0
    for s in reversed(seqs):
        sig = events[s].signature
        if sig is None:
            continue
        if not verify_signature(chain.keys, sig, head_bytes(device, s, events[s].prev)):
            report.findings.append(Finding(device, s, "a chain-head signature that does not verify: forged"))
            continue
        signed_heads += 1
        at = s - 1  # the signature vouches for the previous event's payload, and back along the links
        while at in chain.events and at not in verified and linked.get(at) and at not in chain.conflicts:
            verified.add(at)
            at -= 1
    report.verified[device] = len(verified)
    loose = [s for s in seqs if s not in verified]
    if loose:
        kinds = sorted({events[s].kind for s in loose})
        after_last = all(s > max(verified, default=-1) for s in loose)
        why = (
            "after the last signed chain head (the next health report vouches for them)"
            if after_last
            else "not linked to any signed chain head"
        )
        report.findings.append(
            Finding(
                device, loose[0], f"{len(loose)} events ({', '.join(kinds)}) {why}", problem=not after_last
            )
        )
    if not signed_heads:
        report.findings.append(Finding(device, None, f"no signed chain head ({HEALTH} reports carry them)"))
