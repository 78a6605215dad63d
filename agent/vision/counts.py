"""Count rules: too many objects of one class in a zone for too long (shared bikes piling up)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..events import END, ISSUE, START, UPDATE, Event, ModelRef, box_to_wire, confidence_to_wire
from .detections import Detections
from .frames import FrameInfo
from .zones import WHOLE_FRAME, Zone


@dataclass
class CountState:
    over_since: float | None = None
    last_over: float = 0.0
    start_id: bytes | None = None
    sent_count: int = 0


class CountRules:
    def __init__(self, camera: str, model: ModelRef, classes: list[str], zones: list[Zone]) -> None:
        self.camera = camera
        self.model = model
        self.classes = classes
        self.rules = [(z, j, r) for j, z in enumerate(zones) for r in z.config.count_rules]
        self.state = {(z.id, r.issue_label): CountState() for z, _, r in self.rules}

    def update(self, tracked: Detections, inside: np.ndarray, frame: FrameInfo) -> list[Event]:
        events = []
        now = frame.now
        for zone, j, rule in self.rules:
            if rule.label not in self.classes:
                continue
            mask = (
                inside[:, j] & (tracked.class_id == self.classes.index(rule.label)) if len(tracked) else None
            )
            count = int(mask.sum()) if mask is not None else 0
            st = self.state[(zone.id, rule.issue_label)]
            common: dict[str, Any] = {  # the fields every event of this rule shares
                "kind": ISSUE,
                "captured_ms": frame.captured_ms,
                "clock_synced": frame.clock_synced,
                "label": rule.issue_label,
                "camera": self.camera,
                "zone": None if zone.id == WHOLE_FRAME.id else zone.id,
            }
            if count > rule.more_than:
                st.last_over = now
                if st.over_since is None:
                    st.over_since = now
                if st.start_id is None and now - st.over_since >= rule.dwell_s:
                    assert mask is not None
                    objs = tracked[mask]
                    hull = (*objs.xyxy[:, :2].min(axis=0), *objs.xyxy[:, 2:].max(axis=0))
                    st.start_id, st.sent_count = os.urandom(16), count
                    events.append(
                        Event(
                            **common,
                            event_id=st.start_id,
                            phase=START,
                            model=self.model,
                            confidence=confidence_to_wire(float(np.median(objs.confidence))),
                            box=box_to_wire(*(float(v) for v in hull)),
                            count=float(count),
                        )
                    )
                elif st.start_id is not None and count != st.sent_count:
                    st.sent_count = count
                    events.append(Event(**common, phase=UPDATE, ref=st.start_id, count=float(count)))
                continue
            if st.start_id is None:
                st.over_since = None  # never confirmed: a dip resets the dwell
            elif now - st.last_over >= rule.end_after_s:
                events.append(Event(**common, phase=END, ref=st.start_id, count=float(count)))
                st.start_id, st.over_since = None, None
        return events
