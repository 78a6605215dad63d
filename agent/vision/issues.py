"""Street issues from tracked objects: one ``start``, few ``update``s, one ``end`` per real issue.

What makes an object an issue is persistence (seen in k of the last n frames), dwell (present long
enough) and the median score over the track's life (one confident frame is not enough). Static
classes are remembered by place, so a new track id after an occlusion is the same issue; a cooldown
stops the same object at the same place from opening a second issue after the first ended. The
clocks and ids of that start/update/end are the shared lifecycle's (agent/vision/lifecycle.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..config.camera import IssueRule
from ..events import END, ISSUE, START, UPDATE, Event, ModelRef, box_to_wire, confidence_to_wire
from .detections import Detections, box_iou
from .frames import FrameInfo
from .lifecycle import Occurrence, Onset
from .tracker import Track, Tracker
from .zones import WHOLE_FRAME, Zone

PARKING = "illegal_parking"


@dataclass
class Issue:
    label: str
    zone: str
    rule: IssueRule
    box: np.ndarray
    confidence: float
    track: int
    life: Occurrence = field(default_factory=Occurrence)
    tracks: set[int] = field(default_factory=set)
    sent_box: np.ndarray | None = None
    sent_confidence: float = 0.0

    @property
    def start_id(self) -> bytes:
        return self.life.start_id


class IssueKeeper(Protocol):
    """Where open issues are written whenever they change (agent/vision/issue_store.py)."""

    def save(self, rules: IssueRules) -> None: ...


class IssueRules:
    def __init__(
        self,
        camera: str,
        model: ModelRef,
        classes: list[str],
        rules: dict[str, IssueRule],
        zones: list[Zone],
        parking_classes: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.camera = camera
        self.model = model
        self.classes = classes
        self.rules = rules
        self.zones = zones
        self.parking_classes = set(parking_classes)
        self.candidates: dict[tuple[int, str, str], Onset] = {}  # not (yet) confirmed
        self.open: list[Issue] = []
        self.closed: list[Issue] = []  # ended issues, remembered for their cooldown
        self._by_track: dict[tuple[int, str, str], Issue] = {}
        self.restored: list[Issue] = []  # open before a restart: their clocks start at the next frame
        self.store: IssueKeeper | None = None  # keeps open static issues across restarts

    def _rule_for(self, label: str, zone: Zone) -> tuple[str, IssueRule, float] | None:
        if zone.config.parking_limit_s is not None and label in self.parking_classes:
            return PARKING, self.rules.get(PARKING, IssueRule()), zone.config.parking_limit_s
        rule = self.rules.get(label)
        if rule is None:
            return None  # people, bikes, cars passing by are not issues by themselves
        return label, rule, rule.min_dwell_s

    def update(
        self, tracked: Detections, inside: np.ndarray, tracker: Tracker, frame: FrameInfo
    ) -> list[Event]:
        """One frame of tracked detections (``inside``: zone membership per detection) → events."""
        events: list[Event] = []
        now = frame.now
        for back in self.restored:  # seen "now": they have end_after_s to be seen at their place
            back.life.resume(now)
        self.restored.clear()
        for i in range(len(tracked)):
            track = tracker.tracks.get(int(tracked.tracker_id[i]))
            if track is None:
                continue
            label = self.classes[int(tracked.class_id[i])]
            for j, zone in enumerate(self.zones):
                if not inside[i, j] or not zone.watches(label):
                    continue
                chosen = self._rule_for(label, zone)
                if chosen is None:
                    continue
                issue_label, rule, dwell = chosen
                key = (track.id, zone.id, issue_label)
                dwelt = self.candidates.setdefault(key, Onset()).hold(now)
                issue = self._by_track.get(key)
                if issue is None:
                    confirmed = (
                        track.seen_in_last(rule.n, tracker.frame) >= rule.k
                        and dwelt >= dwell
                        and track.median_score >= rule.min_confidence
                    )
                    if not confirmed:
                        continue
                    issue = self._attach(issue_label, zone.id, rule, track.box, tracker, now)
                    if issue is _SUPPRESSED:
                        continue  # re-checked each frame; opens if still there once the cooldown is over
                    if issue is None:
                        issue = self._open(issue_label, zone.id, rule, track, now, frame)
                        events.append(self._start_event(issue, frame))
                    issue.tracks.add(track.id)
                    self._by_track[key] = issue
                issue.life.held(now)
                issue.box = track.box.copy()
                issue.confidence = track.median_score
        events.extend(self._follow_up(frame))
        self._forget(tracker, now)
        if self.store is not None and events:
            self.store.save(self)
        return events

    def _attach(
        self, label: str, zone: str, rule: IssueRule, box: np.ndarray, tracker: Tracker, now: float
    ) -> Issue | None:
        """An open issue this sighting belongs to, or the cooldown's verdict; None opens a new one."""
        same = [i for i in self.open if i.label == label and i.zone == zone]
        for issue in same:
            if box_iou(box[None], issue.box[None])[0, 0] < rule.place_iou:
                continue
            # A moving object's issue takes a new track only when its own track is gone (id switch);
            # two stalls side by side stay two issues. Static objects are one issue per place.
            if rule.static or not any(t in tracker.tracks for t in issue.tracks):
                return issue
        for issue in self.closed:
            if (
                issue.label == label
                and issue.zone == zone
                and issue.life.cooling(now, rule.cooldown_s)
                and box_iou(box[None], issue.box[None])[0, 0] >= rule.place_iou
            ):
                return _SUPPRESSED
        return None

    def _open(
        self, label: str, zone: str, rule: IssueRule, track: Track, now: float, frame: FrameInfo
    ) -> Issue:
        issue = Issue(label, zone, rule, track.box.copy(), track.median_score, track.id)
        issue.life.resume(now)
        issue.sent_box, issue.sent_confidence = issue.box.copy(), issue.confidence
        self.open.append(issue)
        return issue

    def _follow_up(self, frame: FrameInfo) -> list[Event]:
        now = frame.now
        events = []
        for issue in list(self.open):
            rule = issue.rule
            if issue.life.gone_for(now) >= rule.end_after_s:
                issue.life.end(now)
                self.open.remove(issue)
                self.closed.append(issue)
                self._by_track = {k: v for k, v in self._by_track.items() if v is not issue}
                events.append(self._event(issue, frame, END))
                continue
            changed_box = (
                issue.sent_box is None
                or box_iou(issue.box[None], issue.sent_box[None])[0, 0] < rule.change_iou
            )
            changed_conf = abs(issue.confidence - issue.sent_confidence) >= rule.change_confidence
            if changed_box or changed_conf or issue.life.due(now, rule.heartbeat_s):
                events.append(
                    self._event(
                        issue,
                        frame,
                        UPDATE,
                        box=box_to_wire(*issue.box) if changed_box else None,
                        confidence=confidence_to_wire(issue.confidence) if changed_conf else None,
                    )
                )
                if changed_box:
                    issue.sent_box = issue.box.copy()
                if changed_conf:
                    issue.sent_confidence = issue.confidence
                issue.life.sent(now)
        self.closed = [i for i in self.closed if i.life.cooling(now, i.rule.cooldown_s)]
        return events

    def _forget(self, tracker: Tracker, now: float) -> None:
        for key in [k for k in self.candidates if k[0] not in tracker.tracks]:
            del self.candidates[key]
            self._by_track.pop(key, None)

    def _zone_field(self, zone: str) -> str | None:
        return None if zone == WHOLE_FRAME.id else zone

    def _start_event(self, issue: Issue, frame: FrameInfo) -> Event:
        return Event(
            kind=ISSUE,
            captured_ms=frame.captured_ms,
            clock_synced=frame.clock_synced,
            event_id=issue.start_id,
            phase=START,
            label=issue.label,
            model=self.model,
            confidence=confidence_to_wire(issue.confidence),
            box=box_to_wire(*issue.box),
            camera=self.camera,
            zone=self._zone_field(issue.zone),
            track=issue.track,
        )

    def _event(self, issue: Issue, frame: FrameInfo, phase: str, **changed: Any) -> Event:
        return Event(
            kind=ISSUE,
            captured_ms=frame.captured_ms,
            clock_synced=frame.clock_synced,
            phase=phase,
            ref=issue.start_id,
            label=issue.label,
            camera=self.camera,
            zone=self._zone_field(issue.zone),
            **{k: v for k, v in changed.items() if v is not None},
        )


# Marker returned by _attach when a cooldown forbids opening: the sighting is bound to nothing.
_SUPPRESSED = Issue("", "", IssueRule(), np.zeros(4, np.float32), 0.0, -1)
