"""A camera's rules over its detectors' outputs: tracking, zones, issues, counts, counting lines and
crowding.

Kept apart from inference so that the rules run the same on scripted detection sequences (tests,
replays) as on a live camera. Time comes in with each frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config.camera import CameraConfig
from ..events import Event, ModelRef
from .counts import CountRules
from .crowd import CrowdMonitor, CrowdReading
from .detections import DensityMap, Detections
from .frames import FrameInfo
from .issues import IssueRules
from .lines import LineCounts
from .tracker import Tracker
from .zones import Masks, Zone, make_zones, membership


@dataclass
class DetectorRules:
    """Tracker and rules for the detections of one detection model."""

    classes: list[str]
    tracker: Tracker
    issues: IssueRules
    counts: CountRules
    lines: LineCounts
    tracked: Detections = field(default_factory=Detections.empty)
    inside: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), bool))


class CameraRules:
    def __init__(
        self,
        config: CameraConfig,
        detectors: list[tuple[ModelRef, list[str]]],
        density_model: ModelRef | None = None,
    ) -> None:
        self.config = config
        self.zones: list[Zone] = make_zones(config.zones)
        self.masks = Masks.of(config.masks)
        self.detectors = [
            DetectorRules(
                classes,
                Tracker(config.tracker),
                IssueRules(config.id, ref, classes, config.issues, self.zones, config.parking_classes),
                CountRules(config.id, ref, classes, self.zones),
                LineCounts(config.id, ref, classes, config.lines, config.tracker.lost_s),
            )
            for ref, classes in detectors
        ]
        person = config.crowd.person_label
        self.person_index = next((i for i, (_, c) in enumerate(detectors) if person in c), None)
        person_ref = detectors[self.person_index][0] if self.person_index is not None else None
        person_class = (
            detectors[self.person_index][1].index(person) if self.person_index is not None else None
        )
        self.crowd = CrowdMonitor(
            config.id, config.crowd, self.zones, person_ref, person_class, density_model
        )

    def update(
        self,
        found: list[Detections] | None,
        density: DensityMap | None,
        info: FrameInfo,
    ) -> list[Event]:
        """One frame. ``found`` is each detector's detections, or None when the frame was not inferred
        (motion gating): the scene is unchanged, so the last tracked objects are still there."""
        events: list[Event] = []
        for k, det in enumerate(self.detectors):
            if found is not None:
                det.tracked = det.tracker.update(self.masks.apply(found[k], det.classes), info.now)
            else:
                det.tracker.keep_alive(det.tracked.tracker_id, info.now)
            det.inside = membership(self.zones, det.tracked)
            events += det.issues.update(det.tracked, det.inside, det.tracker, info)
            events += det.counts.update(det.tracked, det.inside, info)
            events += det.lines.update(det.tracked, info)
        people = self.detectors[self.person_index] if self.person_index is not None else None
        events += self.crowd.update(
            people.tracked if people else None, people.inside if people else None, density, info
        )
        return events

    @property
    def line_totals(self) -> dict[str, tuple[int, int]]:
        """Crossings (in, out) per counting line since these rules started, over all detectors."""
        totals: dict[str, tuple[int, int]] = {}
        for det in self.detectors:
            for line_id, tally in det.lines.tallies.items():
                got_in, got_out = totals.get(line_id, (0, 0))
                totals[line_id] = (got_in + tally.total_in, got_out + tally.total_out)
        return totals

    @property
    def crowd_readings(self) -> dict[str, CrowdReading]:
        return dict(self.crowd.readings)
