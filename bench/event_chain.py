"""What tamper evidence costs per event: bytes on the wire and CPU in the outbox's numbering step.

Side by side in one run, alternating: numbering an event as the outbox does (stamp, encode and the
decoder's checks) without the chain, and with it (the previous event's link ``hp`` and the link of
this payload; on health reports also the ed25519 signature of the chain head). Events are the golden
vectors' reading and issue start. Run: ``python bench/event_chain.py``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "vectors"))

from make_vectors import examples  # noqa: E402

from agent.events import validate  # noqa: E402
from agent.trust.keys import DeviceKey  # noqa: E402
from agent.uplink.chain import head_bytes, link_of  # noqa: E402

N = 20_000
ROUNDS = 7


def plain(events: list) -> None:
    for i, event in enumerate(events):
        validate(event.stamped("pole-0042", i))


def chained(events: list, key: DeviceKey | None = None) -> None:
    head = None
    for i, event in enumerate(events):
        sig = key.sign(head_bytes("pole-0042", i, head)) if key is not None else None
        head = link_of(validate(event.stamped("pole-0042", i, head, sig)))


def main() -> None:
    vectors = examples()
    with tempfile.TemporaryDirectory() as tmp:
        key = DeviceKey.load_or_create(Path(tmp) / "device.key")
    for name in ("reading", "issue_start", "health"):
        event = vectors[name]
        events = [event] * N
        size_plain = len(validate(event.stamped("pole-0042", 5)))
        size_chain = len(validate(event.stamped("pole-0042", 5, b"\0" * 8)))
        signed = name == "health"
        if signed:
            size_chain = len(validate(event.stamped("pole-0042", 5, b"\0" * 8, key.sign(b"x"))))
        a, b = [], []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            plain(events)
            a.append((time.perf_counter() - t0) / N * 1e6)
            t0 = time.perf_counter()
            chained(events, key if signed else None)
            b.append((time.perf_counter() - t0) / N * 1e6)
        pa, pb = statistics.median(a), statistics.median(b)
        what = "link + signature" if signed else "link"
        print(
            f"{name:<12} {size_plain} -> {size_chain} bytes (+{size_chain - size_plain}); "
            f"numbering {pa:.2f} -> {pb:.2f} us/event with the {what} ({pb / pa:.2f}x, +{pb - pa:.2f} us)"
        )


if __name__ == "__main__":
    main()
