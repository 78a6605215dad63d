"""Encoded size of typical events: msgpack wire format v1 against JSON carrying the same facts.

Two JSON baselines: the same short-key map as JSON (bytes as hex), and a self-describing JSON with
full field names, ISO time and float box as JSON-publishing peers send. Also encode/decode cost,
measured side by side in one run. Run: ``python bench/event_size.py``.
"""

from __future__ import annotations

import datetime
import json
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "vectors"))

from make_vectors import examples  # noqa: E402

from agent import events as ev  # noqa: E402


def verbose_json(event: ev.Event) -> bytes:
    """The event as a self-describing JSON document with full names (the usual JSON peer)."""
    out: dict = {
        "schemaVersion": ev.SCHEMA_VERSION,
        "deviceId": event.device,
        "sequence": event.seq,
        "eventId": event.event_id.hex(),
        "kind": event.kind,
        "capturedAt": datetime.datetime.fromtimestamp(event.captured_ms / 1000, datetime.UTC).isoformat(),
        "clockSynchronized": event.clock_synced,
    }
    optional = {
        "phase": event.phase,
        "startEventId": event.ref.hex() if event.ref else None,
        "label": event.label,
        "model": {"id": event.model.id, "version": event.model.version, "sha256": event.model.sha256.hex()}
        if event.model
        else None,
        "confidence": event.confidence / ev.CONF_SCALE if event.confidence is not None else None,
        "boundingBox": dict(
            zip(("x1", "y1", "x2", "y2"), (round(v / ev.BOX_SCALE, 4) for v in event.box), strict=True)
        )
        if event.box
        else None,
        "camera": event.camera,
        "zone": event.zone,
        "trackId": event.track,
        "count": event.count,
        "densityPerM2": event.density,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return json.dumps(out, separators=(",", ":")).encode()


def main() -> None:
    cases = examples()
    rows = []
    for name in ("issue_start", "issue_update", "issue_end", "crowd"):
        event = cases[name]
        packed = ev.encode(event)
        same_keys = json.dumps(ev.to_json(event), separators=(",", ":")).encode()
        verbose = verbose_json(event)
        rows.append((name, len(packed), len(same_keys), len(verbose)))
    print(
        f"{'event':<14}{'msgpack':>9}{'json(same keys)':>17}{'json(verbose)':>15}{'mp/json':>9}{'mp/verbose':>12}"
    )
    for name, mp, js, vb in rows:
        print(f"{name:<14}{mp:>9}{js:>17}{vb:>15}{mp / js:>9.0%}{mp / vb:>12.0%}")

    event = cases["issue_update"]
    packed = ev.encode(event)
    n = 20_000
    t_enc = min(timeit.repeat(lambda: ev.encode(event), number=n, repeat=3)) / n
    t_dec = min(timeit.repeat(lambda: ev.decode(packed), number=n, repeat=3)) / n
    t_json = min(timeit.repeat(lambda: json.dumps(ev.to_json(event)), number=n, repeat=3)) / n
    print(
        f"\nissue_update: encode {t_enc * 1e6:.1f} µs, decode+validate {t_dec * 1e6:.1f} µs, "
        f"json.dumps of the same map {t_json * 1e6:.1f} µs (encode/json = {t_enc / t_json:.2f})"
    )


if __name__ == "__main__":
    main()
