"""Crowd counts per zone: density map for dense scenes, person detections for sparse ones.

Density models are poor below about ten people and detectors miss people in dense crowds, so the
density map decides when it counts many, the detector when it counts few. Counts are smoothed; a
``crowding`` alarm (an ``alarm`` event) starts when the density (or count) stays over its threshold
for the dwell time, and ends when it falls back (the lifecycle of agent/vision/lifecycle.py, with no
off-delay).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config.camera import CrowdConfig
from ..events import ALARM, CROWD, CROWDING, END, START, THRESHOLD_SUFFIX, Event, ModelRef
from .detections import DensityMap, Detections
from .frames import FrameInfo
from .lifecycle import Lifecycle, new_id
from .zones import WHOLE_FRAME, Zone


@dataclass
class ZoneCrowd:
    alarm: Lifecycle  # the crowding alarm: on after the dwell, off as soon as it falls back
    smoothed: float | None = None
    last_report: float | None = None
    crossed: tuple[str, float, float, str] | None = None  # what the open alarm is about


@dataclass(frozen=True)
class CrowdReading:
    zone: str
    count: float
    density: float | None
    source: str  # "density" or "detections"


class CrowdMonitor:
    def __init__(
        self,
        camera: str,
        config: CrowdConfig,
        zones: list[Zone],
        detector: ModelRef | None,
        person_class: int | None,
        density_model: ModelRef | None,
    ) -> None:
        self.camera = camera
        self.config = config
        self.zones = zones
        self.detector = detector
        self.person_class = person_class
        self.density_model = density_model
        self.state = {z.id: ZoneCrowd(Lifecycle(config.alarm_dwell_s, 0.0)) for z in zones}
        self.readings: dict[str, CrowdReading] = {}

    @property
    def active(self) -> bool:
        return self.density_model is not None or self.person_class is not None

    def update(
        self, dets: Detections | None, inside: np.ndarray | None, dmap: DensityMap | None, frame: FrameInfo
    ) -> list[Event]:
        if not self.active:
            return []
        cfg = self.config
        events = []
        for j, zone in enumerate(self.zones):
            if not self._counts_people(zone):
                continue
            raw, source, model = None, "", None
            if dmap is not None:
                h, w = dmap.density.shape
                raw, source, model = dmap.count_in(zone.mask(h, w)), "density", self.density_model
            if dets is not None and inside is not None and self.person_class is not None:
                detected = float(np.count_nonzero(inside[:, j] & (dets.class_id == self.person_class)))
                if raw is None or raw < cfg.sparse_below:
                    raw, source, model = detected, "detections", self.detector
                elif detected > raw:  # never fewer than the people the detector can see
                    raw = detected
            if raw is None:
                continue
            st = self.state[zone.id]
            a = cfg.smoothing
            st.smoothed = raw if st.smoothed is None else a * raw + (1 - a) * st.smoothed
            count = round(st.smoothed, 1)
            area = zone.config.area_m2
            density = round(count / area, 3) if area else None
            self.readings[zone.id] = CrowdReading(zone.id, count, density, source)
            events.extend(self._alarm(zone, st, count, density, model, frame))
        return events

    def _counts_people(self, zone: Zone) -> bool:
        """Zones meant for crowds: with an area or an alarm, or naming people; the whole frame only
        with a density model. Other zones would only fill the outbox with zero counts."""
        z = zone.config
        if zone.id == WHOLE_FRAME.id:
            return self.density_model is not None
        return (
            z.area_m2 is not None
            or z.crowd_alarm_count is not None
            or z.crowd_alarm_density is not None
            or self.config.person_label in z.classes
        )

    def _alarm(
        self,
        zone: Zone,
        st: ZoneCrowd,
        count: float,
        density: float | None,
        model: ModelRef | None,
        frame: FrameInfo,
    ) -> list[Event]:
        """The periodic count (a ``crowd`` event), and a ``crowding`` alarm's start or end.

        The alarm goes to ``evt/alarm`` with every other alarm, so a consumer of alarms sees it; the
        counts keep coming as ``crowd`` events while it is on.
        """
        cfg = self.config
        now = frame.now
        crossed: tuple[str, float, float, str] | None = None  # quantity, value, threshold, unit
        count_limit = zone.config.crowd_alarm_count
        density_limit = zone.config.crowd_alarm_density or cfg.alarm_density
        if density is not None and density > density_limit:
            crossed = ("density", density, density_limit, DENSITY_UNIT)
        elif count_limit is not None and count > count_limit:
            crossed = ("count", count, float(count_limit), COUNT_UNIT)
        where: dict[str, Any] = {
            "captured_ms": frame.captured_ms,
            "clock_synced": frame.clock_synced,
            "camera": self.camera,
            "zone": None if zone.id == WHOLE_FRAME.id else zone.id,
            "count": count,
            "density": density,
            "model": model,
        }
        events: list[Event] = []
        if crossed is not None:
            st.crossed = crossed
        change = st.alarm.step(crossed is not None, now)
        if change is not None and change.phase == START:
            events.append(crowding_alarm(START, change.start_id, None, crossed, **where))
        elif change is not None:
            events.append(crowding_alarm(END, new_id(), change.start_id, st.crossed, **where))
        if st.last_report is None or now - st.last_report >= cfg.report_interval_s or events:
            st.last_report = now
            events.insert(0, Event(kind=CROWD, **where))
        return events


COUNT_UNIT = "persons"
DENSITY_UNIT = "persons/m2"


def crowding_alarm(
    phase: str,
    event_id: bytes,
    ref: bytes | None,
    crossed: tuple[str, float, float, str] | None,
    **where: Any,
) -> Event:
    """A ``crowding`` alarm: ``val`` holds the quantity that crossed its threshold and the threshold
    (``count``/``count_threshold`` or ``density``/``density_threshold``), ``u`` their unit."""
    values = units = None
    if crossed is not None:
        quantity, value, threshold, unit = crossed
        values = {quantity: float(value), quantity + THRESHOLD_SUFFIX: float(threshold)}
        units = {quantity: unit, quantity + THRESHOLD_SUFFIX: unit}
    return Event(
        kind=ALARM,
        event_id=event_id,
        phase=phase,
        ref=ref,
        label=CROWDING,
        severity="warning",
        values=values,
        units=units,
        **where,
    )
