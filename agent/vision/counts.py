"""Count rules: too many objects of one class in a zone for too long (shared bikes piling up).

What is counted and what the events carry is here; when a pile-up starts and ends is the shared
lifecycle's (agent/vision/lifecycle.py): over the limit for ``dwell_s``, under it for ``end_after_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config.camera import CountRule
from ..events import END, ISSUE, START, UPDATE, Event, ModelRef, box_to_wire, confidence_to_wire
from .detections import Detections
from .frames import FrameInfo
from .lifecycle import Lifecycle
from .zones import WHOLE_FRAME, Zone


@dataclass
class CountState:
    life: Lifecycle
    sent_count: int = 0  # the count the last start or update carried

    @classmethod
    def of(cls, rule: CountRule) -> CountState:
        return cls(Lifecycle(on_after_s=rule.dwell_s, off_after_s=rule.end_after_s))


class CountRules:
    def __init__(self, camera: str, model: ModelRef, classes: list[str], zones: list[Zone]) -> None:
        self.camera = camera
        self.model = model
        self.classes = classes
        self.rules = [(z, j, r) for j, z in enumerate(zones) for r in z.config.count_rules]
        self.state = {(z.id, r.issue_label): CountState.of(r) for z, _, r in self.rules}

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
            change = st.life.step(count > rule.more_than, now)
            if change is not None and change.phase == START:
                assert mask is not None
                objs = tracked[mask]
                hull = (*objs.xyxy[:, :2].min(axis=0), *objs.xyxy[:, 2:].max(axis=0))
                st.sent_count = count
                events.append(
                    Event(
                        **common,
                        event_id=change.start_id,
                        phase=START,
                        model=self.model,
                        confidence=confidence_to_wire(float(np.median(objs.confidence))),
                        box=box_to_wire(*(float(v) for v in hull)),
                        count=float(count),
                    )
                )
            elif change is not None:
                events.append(Event(**common, phase=END, ref=change.start_id, count=float(count)))
            elif st.life.current is not None and count > rule.more_than and count != st.sent_count:
                st.sent_count = count
                events.append(Event(**common, phase=UPDATE, ref=st.life.current.start_id, count=float(count)))
        return events
