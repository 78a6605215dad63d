"""Counting lines on scripted tracks: the camera's real rules (tracker included), the clock passed in
with each frame, every crossing event through the wire format and back."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agent.config import ConfigError, parse_config
from agent.config.camera import CameraConfig, LineConfig
from agent.events import CROSSING, Event, ModelRef, decode, encode
from agent.vision.detections import Detections
from agent.vision.draw import LINE_COLOUR, draw_lines
from agent.vision.frames import FrameInfo
from agent.vision.lines import crosses, side
from agent.vision.rules import CameraRules

REF = ModelRef("street-issues", "1.0.0", bytes(8))
CLASSES = ["person", "vehicle"]
# a vertical line down the middle of the pavement: facing down it, the right-hand side is x < 0.5
GATE = {"id": "gate", "points": [[0.5, 0.2], [0.5, 0.8]], "classes": ["person"], "report_interval_s": 10}


class Street:
    """People walking at 2 fps through a camera whose only rule is the counting line."""

    def __init__(self, **line: object) -> None:
        config = CameraConfig(id="cam-1", source="x.mp4", models=["m"], lines=[{**GATE, **line}])
        self.rules = CameraRules(config, [(REF, CLASSES)])
        self.t = 0.0
        self.events: list[Event] = []
        self.tracks: set[int] = set()  # every track id the tracker gave

    def frame(self, *objects: tuple[str, float, float]) -> None:
        """Objects by class and ground point (x, y): a box 0.16 wide and 0.3 tall standing there."""
        boxes = [(x - 0.08, y - 0.3, x + 0.08, y) for _, x, y in objects]
        dets = Detections.of(boxes, [0.9] * len(objects), [CLASSES.index(c) for c, _, _ in objects])
        info = FrameInfo(self.t, 1_700_000_000_000 + int(self.t * 1000), True)
        events = self.rules.update([dets], None, info)
        self.tracks |= {int(t) for t in self.rules.detectors[0].tracked.tracker_id}
        for e in events:
            assert decode(encode(e.stamped("pole-1", 1))).values == e.values
            self.events.append(e)
        self.t += 0.5

    def walk(self, label: str, xs: list[float], y: float = 0.6) -> None:
        """From each x to the next in steps of 0.04 a frame (the tracker follows a walker's box)."""
        for start, end in itertools.pairwise(xs):
            steps = max(1, round(abs(end - start) / 0.04))
            for x in np.linspace(start, end, steps + 1)[1:]:
                self.frame((label, float(x), y))

    def wait(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.5)):
            self.frame()

    def counts(self) -> list[dict[str, float]]:
        return [e.values for e in self.events if e.kind == CROSSING and e.values is not None]


def test_sides_and_crossings_of_a_step() -> None:
    a, b = np.array([0.5, 0.2]), np.array([0.5, 0.8])
    assert side(a, b, np.array([0.4, 0.5])) > 0 > side(a, b, np.array([0.6, 0.5]))  # y points down
    assert crosses(a, b, np.array([0.6, 0.5]), np.array([0.4, 0.5]))
    assert not crosses(a, b, np.array([0.6, 0.9]), np.array([0.4, 0.9]))  # below the line's end
    assert not crosses(a, b, np.array([0.6, 0.5]), np.array([0.55, 0.5]))  # not across


def test_a_track_crossing_is_counted_once_per_direction() -> None:
    street = Street()
    street.walk("person", [0.8, 0.7, 0.6, 0.4, 0.3])  # in: from the left of the line to its right
    # it dithers on the line: back, across again, back; still one in and one out
    street.walk("person", [0.3, 0.45, 0.55, 0.45, 0.55, 0.45, 0.3])
    street.wait(10)
    counts = street.counts()
    assert len(counts) >= 2, "a report every 10 s of the walk"
    assert sum(c["in"] for c in counts) == 1 and sum(c["out"] for c in counts) == 1
    assert street.tracks == {1}, "one track all along: it is counted once each way, not per track"
    event = next(e for e in street.events if e.kind == CROSSING)
    assert event.camera == "cam-1" and event.zone == "gate" and event.label == "person"
    assert event.model == REF


def test_crossings_are_reported_every_interval_zeros_included() -> None:
    street = Street()
    street.walk("person", [0.6, 0.4])  # one in, within the first 10 s
    street.wait(7)
    street.wait(12)  # nobody
    assert street.counts() == [{"in": 1.0, "out": 0.0}, {"in": 0.0, "out": 0.0}]
    assert street.rules.line_totals == {"gate": (1, 0)}  # what the live view and preview draw


def test_a_line_is_drawn_with_an_arrow_to_its_in_side() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    draw_lines(image, [LineConfig(**GATE)], {"gate": (3, 2)})
    green = np.all(image == LINE_COLOUR, axis=2)
    assert green[40:160, 100].all(), "the line itself, x = 0.5 from y = 0.2 to 0.8"
    # facing down the line, "in" is to its right: the image's left (x < 0.5), where the arrow points
    assert green[100, 80:98].any() and not green[105:110, 102:130].any()


def test_a_track_that_does_not_cross_is_not_counted() -> None:
    street = Street()
    street.walk("person", [0.8, 0.52, 0.7])  # up to the line and back
    street.walk("person", [0.7, 0.3], y=0.95)  # across below the line's end
    street.walk("vehicle", [0.8, 0.2])  # across, but the line counts people only
    street.wait(10)
    counts = street.counts()
    assert counts and all(c == {"in": 0.0, "out": 0.0} for c in counts)


def test_two_people_crossing_both_ways_are_counted_apart() -> None:
    street = Street(classes=[])  # every class: a vehicle counts too
    for a, b in zip(np.linspace(0.8, 0.3, 13), np.linspace(0.2, 0.7, 13), strict=True):
        street.frame(("person", float(a), 0.4), ("vehicle", float(b), 0.75))
    street.wait(10)
    (counts,) = street.counts()
    assert counts == {"in": 1.0, "out": 1.0}
    assert [e.label for e in street.events if e.kind == CROSSING] == [None]  # several classes


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([[0.1, 0.1]], "exactly 2 points, not 1"),
        ([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]], "exactly 2 points, not 3"),
        ([[0.1, 0.1], [1.5, 0.2]], "outside the image"),
        ([[0.1, 0.1], [0.105, 0.1]], "closer than 0.02"),
    ],
)
def test_a_bad_line_is_a_config_error_that_names_it(points: list[list[float]], message: str) -> None:
    camera = {"id": "cam-1", "source": "x.mp4", "models": ["m"], "lines": [{"id": "gate", "points": points}]}
    with pytest.raises(ConfigError) as caught:
        parse_config({"device": {"id": "pole-1"}, "cameras": [camera]})
    (problem,) = caught.value.problems
    assert problem[0] == "cameras[0].lines[0].points" and message in problem[1]


def test_a_line_may_not_share_a_zone_id() -> None:
    zone = {"id": "gate", "polygon": [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]}
    camera = {"id": "cam-1", "source": "x.mp4", "models": ["m"], "zones": [zone], "lines": [GATE]}
    with pytest.raises(ConfigError, match="line gate: another zone or line has this id"):
        parse_config({"device": {"id": "pole-1"}, "cameras": [camera]})
