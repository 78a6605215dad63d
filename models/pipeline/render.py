"""Whole synthetic frames: street scenes with YOLO labels and crowd scenes with head points.

Everything is a pure function of the seed, so a dataset, a held-out set or the demo clip is rebuilt
bit for bit from its seeds (held-out sets use seeds from a range training never touches).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.pipeline import conditions
from models.pipeline.canvas import Canvas
from models.pipeline.objects import CLASSES, PAINTERS, distractor, head_point
from models.pipeline.view import LIGHTING, WEATHER, Conditions, StreetView

MIN_VISIBLE = 0.4  # share of an object's own pixels that must stay unoccluded for it to be labelled


@dataclass(frozen=True)
class Label:
    cls: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels


@dataclass(frozen=True)
class Placement:
    """One object to paint: its class, the ground point under it and its own appearance seed."""

    cls: str
    x: float
    y: float
    seed: int


@dataclass
class Scene:
    image: np.ndarray  # BGR uint8, as a camera delivers it through OpenCV
    conditions: Conditions
    labels: list[Label] = field(default_factory=list)
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))  # crowd heads


def sample_conditions(rng: np.random.Generator) -> Conditions:
    lighting = LIGHTING[rng.choice(3, p=[0.4, 0.3, 0.3])]
    weather = WEATHER[rng.choice(3, p=[0.6, 0.25, 0.15])]
    return Conditions(lighting, weather)


def place(view: StreetView, rng: np.random.Generator, cls: str) -> tuple[float, float]:
    """A plausible ground point for ``cls``: potholes on the road, stalls on the pavement, and so on."""
    lay = view.layout
    y = rng.uniform(view.min_row() + 0.08 * view.height, view.height * 1.0)
    if lay.plaza:
        return rng.uniform(0, view.width), y
    if lay.road_left > 0:  # pole on the left pavement
        pave = (lay.wall_left + 0.5, lay.road_left - 0.4)
        far_pave = (lay.road_right + 0.4, lay.wall_right - 0.5)
    else:
        pave = (lay.road_right + 0.4, lay.wall_right - 0.5)
        far_pave = (lay.wall_left + 0.5, lay.road_left - 0.4)
    side = pave if rng.random() < 0.7 else far_pave
    if cls == "pothole":
        lat = rng.uniform(lay.road_left + 0.6, lay.road_right - 0.6)
        y = rng.uniform(view.min_row() + 0.2 * view.height, view.height * 0.98)
    elif cls == "vehicle":
        lat = rng.uniform(lay.road_left + 1.1, lay.road_right - 1.1)
    elif cls == "illegal_ad":
        rows = [r for r in getattr(view, "pole_rows", []) if r > view.min_row() + 0.1 * view.height]
        if rows and rng.random() < 0.6:
            y = float(rng.choice(rows))
            lat = view.pole_lateral
        else:
            wall = lay.wall_left if side is pave and lay.road_left > 0 else lay.wall_right
            if side is far_pave:
                wall = lay.wall_right if lay.road_left > 0 else lay.wall_left
            lat = wall + (0.1 if wall < 0 else -0.1)
    elif cls == "debris_pile" and rng.random() < 0.4:
        lat = lay.road_left + 1.0 if rng.random() < 0.5 else lay.road_right - 1.0
    elif cls == "person" and rng.random() < 0.2:
        lat = rng.uniform(lay.road_left, lay.road_right)
    else:
        lat = rng.uniform(min(side), max(side))
    return view.ground_x(lat, y), y


def compose(
    view: StreetView,
    placements: list[Placement],
    cond: Conditions,
    rng: np.random.Generator,
    *,
    distractors: list[tuple[float, float, int]] = (),
) -> Scene:
    """Paint ``placements`` far to near on the view's background, then light and degrade the frame."""
    c = Canvas(view.background(cond.lighting))
    night = cond.lighting == "night"
    for x, y, seed in distractors:
        distractor(c, view, np.random.default_rng(seed), x, y)
    order = sorted(range(len(placements)), key=lambda i: placements[i].y)
    painted: dict[int, tuple[tuple[float, float, float, float], int]] = {}
    for i in order:
        pl = placements[i]
        c.begin(i + 1)
        PAINTERS[pl.cls](c, view, np.random.default_rng(pl.seed), pl.x, pl.y, night)
        extent, owned = c.end()
        if extent is not None and owned > 0:
            painted[i] = (extent, owned)
    image = conditions.apply(c, view, cond, rng)
    labels = []
    counts = np.bincount(c.ids.ravel(), minlength=len(placements) + 1)
    for i, (extent, owned) in painted.items():
        x1, y1 = max(extent[0], 0.0), max(extent[1], 0.0)
        x2, y2 = min(extent[2], view.width - 1.0), min(extent[3], view.height - 1.0)
        full = (extent[2] - extent[0]) * (extent[3] - extent[1])
        if x2 - x1 < 2 or y2 - y1 < 2 or (x2 - x1) * (y2 - y1) < 0.5 * full:
            continue
        if counts[i + 1] / owned < MIN_VISIBLE:
            continue
        labels.append(Label(CLASSES.index(placements[i].cls), (x1, y1, x2, y2)))
    return Scene(image=image, conditions=cond, labels=labels)


def render_street(seed: int, width: int = 640, height: int = 360) -> Scene:
    """A random street frame with a random mix of issues, people and traffic."""
    rng = np.random.default_rng(seed)
    view = StreetView(rng, width, height)
    cond = sample_conditions(rng)
    view.background(cond.lighting)  # paints the poles, which flyers are posted on
    placements = []
    for cls in CLASSES:
        n = rng.choice(4, p=[0.45, 0.35, 0.13, 0.07])
        for _ in range(n):
            x, y = place(view, rng, cls)
            placements.append(Placement(cls, x, y, int(rng.integers(1 << 31))))
    distractors = []
    for _ in range(int(rng.integers(0, 4))):
        x, y = place(view, rng, "garbage")
        distractors.append((x, y, int(rng.integers(1 << 31))))
    return compose(view, placements, cond, rng, distractors=distractors)


# Share of crowd-training frames that are ordinary streets (traffic, stalls, litter, a few people):
# without them the counter has never seen a street and reads cars and stalls as a crowd.
STREET_SHARE = 0.3


def _street_crowd(rng: np.random.Generator, width: int, height: int) -> Scene:
    view = StreetView(rng, width, height)
    cond = sample_conditions(rng)
    view.background(cond.lighting)  # paints the poles, which flyers are posted on
    placements = []
    for cls in CLASSES:
        if cls == "person":
            continue
        for _ in range(rng.choice(3, p=[0.5, 0.35, 0.15])):
            x, y = place(view, rng, cls)
            placements.append(Placement(cls, x, y, int(rng.integers(1 << 31))))
    people = int(
        rng.choice([rng.integers(0, 4), rng.integers(4, 15), rng.integers(15, 41)], p=[0.4, 0.35, 0.25])
    )
    persons = []
    for _ in range(people):
        x, y = place(view, rng, "person")
        persons.append(Placement("person", x, y, int(rng.integers(1 << 31))))
    scene = compose(view, placements + persons, cond, rng)
    heads = np.array([(pl.x, head_point(view, pl.y)) for pl in persons], dtype=np.float32).reshape(-1, 2)
    inside = (heads[:, 0] >= 0) & (heads[:, 0] < width) & (heads[:, 1] >= 0) & (heads[:, 1] < height)
    scene.points = heads[inside]
    scene.labels = []
    return scene


def render_crowd(seed: int, width: int = 640, height: int = 360, count: int | None = None) -> Scene:
    """A square or wide pavement seen from above-ish with ``count`` people (random 0-200 if None).

    Half the scenes gather people in a few clusters (a queue, a gathering), half spread them out.
    """
    rng = np.random.default_rng(seed)
    if count is None and rng.random() < STREET_SHARE:
        return _street_crowd(rng, width, height)
    view = StreetView(rng, width, height, plaza=True)
    cond = sample_conditions(rng)
    if count is None:
        count = int(
            rng.choice([rng.integers(0, 10), rng.integers(10, 60), rng.integers(60, 201)], p=[0.1, 0.4, 0.5])
        )
    y_lo = max(view.min_row(), 0.0) + 0.03 * height
    if rng.random() < 0.5:
        xs = rng.uniform(-0.02 * width, 1.02 * width, count)
        ys = y_lo + (height * 1.08 - y_lo) * rng.uniform(0, 1, count) ** 0.8
    else:
        k = int(rng.integers(1, 4))
        centers = np.stack([rng.uniform(0.15, 0.85, k) * width, rng.uniform(y_lo, height, k)], 1)
        which = rng.integers(0, k, count)
        spread = rng.uniform(0.05, 0.2) * width
        xs = centers[which, 0] + rng.normal(0, spread, count)
        ys = centers[which, 1] + rng.normal(0, spread * 0.5, count)
        ys = np.clip(ys, y_lo, height * 1.08)
    placements = [
        Placement("person", float(x), float(y), int(rng.integers(1 << 31)))
        for x, y in zip(xs, ys, strict=False)
    ]
    scene = compose(view, placements, cond, rng)
    heads = np.array([(pl.x, head_point(view, pl.y)) for pl in placements], dtype=np.float32).reshape(-1, 2)
    inside = (heads[:, 0] >= 0) & (heads[:, 0] < width) & (heads[:, 1] >= 0) & (heads[:, 1] < height)
    scene.points = heads[inside]
    scene.labels = []
    return scene
