"""Track ids across frames: ByteTrack-style two-stage IoU association, per class.

Confident detections are matched to tracks first; weaker ones may then only extend tracks that
would otherwise be missed (a partly occluded stall), never start one. By default every detection the
model reports is confident: its manifest's thresholds already decided, as its exporter's predict does. Time is passed in with each
frame so that scripted sequences in tests are deterministic.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..config.camera import TrackerConfig
from .detections import Detections, box_iou

SCORE_HISTORY = 512  # scores kept per track for its median; plenty for hours at 2 fps with gating


@dataclass
class Track:
    id: int
    class_id: int
    box: np.ndarray  # latest normalized xyxy
    first_seen: float
    last_seen: float
    scores: deque[float] = field(default_factory=lambda: deque(maxlen=SCORE_HISTORY))
    frames: deque[int] = field(default_factory=lambda: deque(maxlen=64))  # frame numbers it was seen in

    @property
    def median_score(self) -> float:
        return float(np.median(self.scores)) if self.scores else 0.0

    def seen_in_last(self, n: int, frame: int) -> int:
        return sum(1 for f in self.frames if f > frame - n)


def _greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending IoU; good enough for the few objects of one class per frame."""
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r not in used_r and c not in used_c:
            used_r.add(r)
            used_c.add(c)
            pairs.append((r, c))
    return pairs


class Tracker:
    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.tracks: dict[int, Track] = {}
        self.frame = 0
        self._ids = itertools.count(1)

    def update(self, dets: Detections, now: float) -> Detections:
        """Assign track ids; returns the detections that belong to a track, with ``tracker_id`` set."""
        cfg = self.config
        self.frame += 1
        if not len(dets):  # an empty street: nothing to match, only lost tracks to forget
            self._forget(now)
            return Detections.empty()
        # Python values once, not a numpy scalar per detection and track: a busy street has dozens.
        boxes = list(dets.xyxy.copy())  # rows of the tracker's own copy, one for each track taking it
        scores, classes = dets.confidence.tolist(), dets.class_id.tolist()
        ids = [-1] * len(dets)
        bar = 0.0 if cfg.high_confidence is None else cfg.high_confidence
        high = np.flatnonzero(dets.confidence >= bar).tolist()
        low = np.flatnonzero((dets.confidence >= cfg.low_confidence) & (dets.confidence < bar)).tolist()
        tracks = list(self.tracks.values())
        if tracks:
            # One IoU matrix for every class at once, pairs of different classes ruled out: the same
            # matches as class by class, without a pass over the tracks and an IoU per class.
            iou = box_iou(dets.xyxy, np.concatenate([t.box for t in tracks]).reshape(-1, 4))
            iou[dets.class_id[:, None] != np.asarray([t.class_id for t in tracks])[None, :]] = -1.0
            free = list(range(len(tracks)))
            for group in (high, low):
                if not free or not group:
                    continue
                pairs = _greedy_match(iou[np.ix_(group, free)], cfg.match_iou)
                for r, c in pairs:
                    track, d = tracks[free[c]], group[r]
                    self._extend(track, boxes[d], scores[d], now)
                    ids[d] = track.id
                taken = {c for _, c in pairs}
                free = [t for j, t in enumerate(free) if j not in taken]
        # New tracks for the confident ones left, numbered class by class as they come.
        for d in sorted((d for d in high if ids[d] < 0), key=classes.__getitem__):
            track = Track(next(self._ids), classes[d], boxes[d], now, now)
            self._extend(track, boxes[d], scores[d], now)
            self.tracks[track.id] = track
            ids[d] = track.id
        self._forget(now)
        kept = np.asarray(ids, np.int64)
        keep = kept >= 0
        return dets[keep].with_tracker_ids(kept[keep])

    def _forget(self, now: float) -> None:
        lost_s = self.config.lost_s
        for tid in [t.id for t in self.tracks.values() if now - t.last_seen > lost_s]:
            del self.tracks[tid]

    def keep_alive(self, ids: np.ndarray, now: float) -> None:
        """A frame skipped by motion gating shows the same objects: they are still there."""
        for tid in ids:
            track = self.tracks.get(int(tid))
            if track is not None:
                track.last_seen = now

    def _extend(self, track: Track, box: np.ndarray, score: float, now: float) -> None:
        track.box = box
        track.last_seen = now
        track.scores.append(score)
        track.frames.append(self.frame)
