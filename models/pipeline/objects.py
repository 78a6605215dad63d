"""Painters for the eight street-issue classes, drawn at real-world size on the ground plane.

Each painter draws one object standing on the ground at image point ``(x, y)`` (bottom centre), sized
from the view's pixels-per-metre at that row, with randomised shape, colour and pose so no two
instances look alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.pipeline.canvas import Canvas
from models.pipeline.view import StreetView

CLASSES = (
    "garbage",
    "street_stall",
    "pothole",
    "debris_pile",
    "illegal_ad",
    "bicycle",
    "vehicle",
    "person",
)

Painter = Callable[[Canvas, StreetView, np.random.Generator, float, float, bool], None]


def _col(rng: np.random.Generator, base: tuple[float, float, float], spread: float = 25) -> tuple:
    return tuple(float(np.clip(b + rng.uniform(-spread, spread), 0, 255)) for b in base)


def _shade(color: tuple, k: float) -> tuple:
    return tuple(float(np.clip(v * k, 0, 255)) for v in color)


def _shadow(c: Canvas, x: float, y: float, half_w: float, p: float) -> None:
    region = c.image
    h, w = region.shape[:2]
    x1, x2 = int(max(0, x - half_w * 1.1)), int(min(w, x + half_w * 1.1))
    y1, y2 = int(max(0, y - 0.12 * p - 1)), int(min(h, y + 0.08 * p + 1))
    if x1 < x2 and y1 < y2:
        region[y1:y2, x1:x2] = (region[y1:y2, x1:x2] * 0.7).astype(np.uint8)


CLOTHES = [
    (40, 40, 40),
    (150, 60, 30),
    (40, 40, 160),
    (200, 200, 200),
    (60, 120, 60),
    (30, 150, 220),
    (120, 50, 120),
    (90, 90, 90),
    (20, 60, 110),
    (170, 130, 60),
]
SKIN = [(170, 200, 235), (120, 160, 210), (80, 110, 160), (60, 80, 110)]


def person(c: Canvas, v: StreetView, rng: np.random.Generator, x: float, y: float, night: bool) -> None:
    p = v.ppm(y)
    hgt = rng.uniform(1.55, 1.9) * p
    wid = rng.uniform(0.38, 0.5) * p
    _shadow(c, x, y, wid * 0.6, p)
    legs = _col(rng, CLOTHES[rng.integers(len(CLOTHES))], 20)
    top = _col(rng, CLOTHES[rng.integers(len(CLOTHES))], 30)
    skin = SKIN[rng.integers(len(SKIN))]
    stride = rng.uniform(-0.18, 0.18) * p
    hip = y - 0.47 * hgt
    shoulder = y - 0.82 * hgt
    leg_t = max(wid * 0.32, 1)
    c.line((x - wid * 0.18, hip), (x - wid * 0.18 - stride, y), legs, leg_t)
    c.line((x + wid * 0.18, hip), (x + wid * 0.18 + stride, y), legs, leg_t)
    c.poly(
        [
            (x - wid / 2, shoulder),
            (x + wid / 2, shoulder),
            (x + wid * 0.4, hip + 0.03 * hgt),
            (x - wid * 0.4, hip + 0.03 * hgt),
        ],
        top,
    )
    arm_t = max(wid * 0.2, 1)
    swing = rng.uniform(-0.15, 0.15) * p
    c.line((x - wid * 0.5, shoulder + 1), (x - wid * 0.55 + swing, hip), top, arm_t)
    c.line((x + wid * 0.5, shoulder + 1), (x + wid * 0.55 - swing, hip), top, arm_t)
    head_r = 0.105 * hgt
    c.ellipse((x, shoulder - head_r * 0.95), (head_r * 0.85, head_r), skin)
    hair = _col(rng, (30, 30, 40), 25)
    c.ellipse((x, shoulder - head_r * 1.45), (head_r * 0.85, head_r * 0.5), hair)
    if rng.random() < 0.2:  # a bag or umbrella breaks up the silhouette
        c.rect(x + wid * 0.45, hip - 0.1 * hgt, x + wid * 0.8, hip + 0.08 * hgt, _col(rng, (60, 60, 60)))


def head_point(v: StreetView, y: float, hgt_m: float = 1.72) -> float:
    """Image row of the head centre of a person standing at row ``y`` (crowd point annotations)."""
    return y - 0.9 * hgt_m * v.ppm(y)


def vehicle(c: Canvas, v: StreetView, rng: np.random.Generator, x: float, y: float, night: bool) -> None:
    p = v.ppm(y)
    kind = rng.choice(["car", "car", "van", "suv"])
    wid = {"car": 1.8, "van": 2.0, "suv": 1.9}[kind] * p * rng.uniform(0.95, 1.05)
    hgt = {"car": 1.45, "van": 2.1, "suv": 1.75}[kind] * p * rng.uniform(0.95, 1.05)
    body = _col(
        rng,
        [
            (30, 30, 30),
            (200, 200, 200),
            (40, 40, 150),
            (140, 80, 20),
            (220, 220, 225),
            (60, 60, 60),
            (20, 90, 180),
            (30, 100, 40),
        ][rng.integers(8)],
        20,
    )
    # the side that recedes towards the vanishing point gives the car its depth
    length = rng.uniform(3.8, 4.8)
    y_far = v.row_at(v.distance(y) + length)
    pf = v.ppm(y_far)
    lat = v.lateral(x, y)
    side = 1 if lat > 0 else -1
    near_edge = x - side * wid / 2
    far_x = v.ground_x(lat - side * wid / 2 / p, y_far)
    _shadow(c, x, y, wid * 0.6, p)
    c.poly(
        [
            (near_edge, y - 0.2 * hgt),
            (far_x, y_far - 0.2 * hgt * pf / p),
            (far_x, y_far - hgt * 0.65 * pf / p),
            (near_edge, y - hgt * 0.65),
        ],
        _shade(body, 0.8),
    )
    c.rect(x - wid / 2, y - hgt * 0.62, x + wid / 2, y - 0.12 * hgt, body)
    roof_in = 0.12 * wid if kind != "van" else 0.03 * wid
    c.poly(
        [
            (x - wid / 2 + roof_in, y - hgt),
            (x + wid / 2 - roof_in, y - hgt),
            (x + wid / 2 - 0.02 * wid, y - hgt * 0.6),
            (x - wid / 2 + 0.02 * wid, y - hgt * 0.6),
        ],
        body,
    )
    glass = (70, 60, 50) if not night else (30, 25, 20)
    c.poly(
        [
            (x - wid / 2 + roof_in + 0.05 * wid, y - hgt * 0.95),
            (x + wid / 2 - roof_in - 0.05 * wid, y - hgt * 0.95),
            (x + wid / 2 - 0.08 * wid, y - hgt * 0.66),
            (x - wid / 2 + 0.08 * wid, y - hgt * 0.66),
        ],
        glass,
    )
    wheel = (20, 20, 20)
    c.rect(x - wid / 2 + 0.04 * wid, y - 0.16 * hgt, x - wid / 2 + 0.2 * wid, y, wheel)
    c.rect(x + wid / 2 - 0.2 * wid, y - 0.16 * hgt, x + wid / 2 - 0.04 * wid, y, wheel)
    c.rect(x - 0.15 * wid, y - 0.35 * hgt, x + 0.15 * wid, y - 0.26 * hgt, (210, 210, 210))  # plate
    lamp_col = (40, 40, 220) if rng.random() < 0.6 else (200, 230, 250)
    for lx in (x - wid * 0.4, x + wid * 0.4):
        c.ellipse((lx, y - 0.45 * hgt), (0.08 * wid, 0.05 * hgt), lamp_col)
        if night:
            c.light((lx, y - 0.45 * hgt), 0.12 * wid, lamp_col, 1.2)


def bicycle(c: Canvas, v: StreetView, rng: np.random.Generator, x: float, y: float, night: bool) -> None:
    p = v.ppm(y)
    frame = _col(
        rng, [(0, 200, 250), (0, 140, 250), (60, 190, 60), (40, 40, 200), (230, 160, 40)][rng.integers(5)], 15
    )
    # parked across the pavement the bike shows its side foreshortened by the view angle
    turn = rng.uniform(0.45, 1.0)
    half = 0.85 * p * turn
    r = 0.33 * p
    t = max(0.05 * p, 1)
    rear, front = (x - half + r * turn, y - r), (x + half - r * turn, y - r)
    if rng.random() < 0.5:
        rear, front = front, rear
    for cx, cy in (rear, front):
        c.ellipse((cx, cy), (r * turn, r), (25, 25, 25), label=False)
        c.ellipse(
            (cx, cy),
            (r * turn * 0.8, r * 0.8),
            c.image[int(np.clip(cy, 0, c.height - 1)), int(np.clip(cx, 0, c.width - 1))].tolist(),
            label=False,
        )
        c.ring((cx, cy), r, (25, 25, 25), t)
    seat = (rear[0] * 0.65 + front[0] * 0.35, y - 0.95 * p)
    bar = (front[0] * 0.9 + rear[0] * 0.1, y - 1.05 * p)
    crank = ((rear[0] + front[0]) / 2, y - r)
    for a, b in ((rear, crank), (crank, seat), (seat, rear), (crank, bar), (bar, front), (seat, bar)):
        c.line(a, b, frame, t * 1.3)
    c.line((seat[0] - 0.1 * p, seat[1]), (seat[0] + 0.1 * p, seat[1]), (20, 20, 20), t * 1.5)
    c.line((bar[0] - 0.12 * p, bar[1] - 0.05 * p), (bar[0] + 0.12 * p, bar[1]), (20, 20, 20), t * 1.2)
    if rng.random() < 0.5:
        c.rect(bar[0] - 0.15 * p, bar[1] + 0.05 * p, bar[0] + 0.15 * p, bar[1] + 0.3 * p, frame)  # basket


def garbage(c: Canvas, v: StreetView, rng: np.random.Generator, x: float, y: float, night: bool) -> None:
    p = v.ppm(y)
    width = rng.uniform(0.7, 1.8) * p
    _shadow(c, x, y, width * 0.55, p)
    n = int(rng.integers(2, 7))
    palette = [(25, 25, 25), (30, 80, 30), (200, 200, 200), (40, 40, 100), (20, 120, 160), (120, 60, 20)]
    for _ in range(n):  # bags: rounded sacks with a tied neck
        bx = x + rng.uniform(-0.4, 0.4) * width
        bw = rng.uniform(0.35, 0.6) * p
        bh = bw * rng.uniform(0.8, 1.3)
        by = y - rng.uniform(0, 0.15) * p
        col = _col(rng, palette[rng.integers(len(palette))], 15)
        c.ellipse((bx, by - bh / 2), (bw / 2, bh / 2), col, angle=rng.uniform(-20, 20))
        c.ellipse((bx - bw * 0.15, by - bh / 2 - bw * 0.2), (bw * 0.15, bh * 0.15), _shade(col, 1.5))
        c.line((bx, by - bh), (bx + rng.uniform(-0.1, 0.1) * p, by - bh - 0.12 * p), col, max(0.04 * p, 1))
    for _ in range(int(rng.integers(4, 14))):  # loose litter: cups, cartons, paper
        lx = x + rng.uniform(-0.6, 0.6) * width
        ly = y - rng.uniform(-0.05, 0.25) * p
        s = rng.uniform(0.05, 0.15) * p
        c.rect(lx - s, ly - s * 0.7, lx + s, ly, _col(rng, tuple(rng.uniform(80, 255, 3)), 0))


def street_stall(c: Canvas, v: StreetView, rng: np.random.Generator, x: float, y: float, night: bool) -> None:
    p = v.ppm(y)
    wid = rng.uniform(1.4, 2.6) * p
    table_h = 0.85 * p
    _shadow(c, x, y, wid * 0.55, p)
    wood = _col(rng, (60, 90, 130), 20)
    c.rect(x - wid * 0.45, y - table_h, x - wid * 0.42, y, (50, 50, 50))
    c.rect(x + wid * 0.42, y - table_h, x + wid * 0.45, y, (50, 50, 50))
    cloth = _col(
        rng,
        [(200, 60, 40), (40, 40, 200), (40, 160, 40), (30, 180, 230), (230, 230, 230)][rng.integers(5)],
        20,
    )
    c.rect(x - wid / 2, y - table_h - 0.05 * p, x + wid / 2, y - table_h + 0.45 * p, cloth)
    c.rect(x - wid / 2, y - table_h - 0.1 * p, x + wid / 2, y - table_h, wood)
    for _ in range(int(rng.integers(5, 15))):  # goods: fruit crates, boxes, pots
        gx = x + rng.uniform(-0.45, 0.45) * wid
        gs = rng.uniform(0.08, 0.2) * p
        col = _col(rng, tuple(rng.uniform(30, 250, 3)), 0)
        if rng.random() < 0.5:
            c.ellipse((gx, y - table_h - 0.1 * p - gs), (gs, gs), col)
        else:
            c.rect(gx - gs, y - table_h - 0.1 * p - 2 * gs, gx + gs, y - table_h - 0.1 * p, col)
    style = rng.integers(2)
    top = y - rng.uniform(2.0, 2.5) * p
    canopy = _col(
        rng,
        [(40, 40, 200), (200, 120, 30), (40, 180, 40), (230, 230, 230), (30, 200, 250)][rng.integers(5)],
        20,
    )
    if style == 0:  # umbrella on a centre pole
        c.line((x, top), (x, y - table_h), (60, 60, 60), max(0.05 * p, 1))
        c.poly([(x - wid * 0.65, top + 0.45 * p), (x, top), (x + wid * 0.65, top + 0.45 * p)], canopy)
    else:  # awning on four posts, with a striped valance
        c.line((x - wid * 0.48, top), (x - wid * 0.48, y - table_h), (60, 60, 60), max(0.05 * p, 1))
        c.line((x + wid * 0.48, top), (x + wid * 0.48, y - table_h), (60, 60, 60), max(0.05 * p, 1))
        c.poly(
            [
                (x - wid * 0.55, top + 0.35 * p),
                (x - wid * 0.45, top),
                (x + wid * 0.45, top),
                (x + wid * 0.55, top + 0.35 * p),
            ],
            canopy,
        )
        for i in range(6):
            sx = x - wid * 0.55 + i * wid * 1.1 / 6
            c.rect(sx, top + 0.35 * p, sx + wid * 1.1 / 12, top + 0.5 * p, (240, 240, 240))
    if night:
        c.light((x, top + 0.5 * p), 0.5 * p, (150, 220, 255), 0.9)


def debris_pile(c: Canvas, v: StreetView, rng: np.random.Generator, x: float, y: float, night: bool) -> None:
    p = v.ppm(y)
    wid = rng.uniform(1.0, 2.6) * p
    hgt = rng.uniform(0.4, 1.0) * p
    base = _col(rng, [(70, 100, 130), (120, 120, 120), (50, 80, 110), (150, 150, 140)][rng.integers(4)], 15)
    pts = [(x - wid / 2, y)]
    for i in range(1, 8):
        t = i / 8
        bump = np.sin(np.pi * t) ** 0.8 * hgt * rng.uniform(0.75, 1.1)
        pts.append((x - wid / 2 + t * wid, y - bump))
    pts.append((x + wid / 2, y))
    c.poly(pts, base)
    for _ in range(int(rng.integers(10, 30))):  # bricks, rubble, planks in the mound
        t = rng.uniform(0.1, 0.9)
        bx = x - wid / 2 + t * wid
        by = y - rng.uniform(0.05, 0.8) * np.sin(np.pi * t) * hgt
        s = rng.uniform(0.06, 0.16) * p
        col = _col(rng, [(40, 60, 170), (90, 90, 90), (60, 120, 170), (170, 170, 170)][rng.integers(4)], 15)
        if rng.random() < 0.25:
            c.line((bx - 2 * s, by), (bx + 2 * s, by + rng.uniform(-s, s)), (80, 140, 190), max(s * 0.5, 1))
        else:
            c.rect(bx - s, by - s * 0.6, bx + s, by, col)
    if rng.random() < 0.4:  # a traffic cone often marks the pile
        cx = x + wid * rng.choice([-0.6, 0.6])
        c.poly([(cx - 0.15 * p, y), (cx, y - 0.7 * p), (cx + 0.15 * p, y)], (20, 90, 250))


def pothole(c: Canvas, v: StreetView, rng: np.random.Generator, x: float, y: float, night: bool) -> None:
    p = v.ppm(y)
    wid = rng.uniform(0.5, 1.4) * p
    # a flat hole on the road: foreshortened by the viewing angle (steeper near the pole)
    squash = np.clip((y - v.horizon) / (v.cam_h * p) * 0.9 + 0.2, 0.2, 0.75)
    hgt = wid * squash * rng.uniform(0.7, 1.2)
    n = 14
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = rng.uniform(0.7, 1.1, n)
    cy = y - hgt / 2
    rim = [
        (x + np.cos(a) * r * wid / 2 * 1.1, cy + np.sin(a) * r * hgt / 2 * 1.1)
        for a, r in zip(ang, rad, strict=False)
    ]
    hole = [
        (x + np.cos(a) * r * wid / 2, cy + np.sin(a) * r * hgt / 2) for a, r in zip(ang, rad, strict=False)
    ]
    c.poly(rim, _col(rng, (125, 130, 135), 15))
    c.poly(hole, _col(rng, (35, 38, 42), 10))
    c.poly(
        [(x + (px - x) * 0.8, cy + (py - cy) * 0.7 + hgt * 0.1) for px, py in hole],
        _col(rng, (25, 28, 30), 8),
    )
    for _ in range(int(rng.integers(2, 6))):  # cracks radiating out of the hole
        a = rng.uniform(0, 2 * np.pi)
        c.line(
            (x + np.cos(a) * wid / 2, cy + np.sin(a) * hgt / 2),
            (x + np.cos(a) * wid * 0.9, cy + np.sin(a) * hgt * 0.9),
            (40, 42, 45),
            max(0.03 * p, 1),
        )


def illegal_ad(c: Canvas, v: StreetView, rng: np.random.Generator, x: float, y: float, night: bool) -> None:
    """Flyers pasted on a pole or wall: ``(x, y)`` is the ground point below them."""
    p = v.ppm(y)
    n = int(rng.integers(1, 5))
    h0 = rng.uniform(1.0, 1.8)
    banner = rng.random() < 0.25
    for i in range(n):
        if banner:
            w, h = rng.uniform(1.2, 2.0) * p, rng.uniform(0.4, 0.7) * p
        else:
            w, h = rng.uniform(0.25, 0.45) * p, rng.uniform(0.35, 0.6) * p
        fx = x + rng.uniform(-0.25, 0.25) * p * (0 if banner else 1)
        fy = y - (h0 + i * rng.uniform(0.3, 0.6)) * p
        paper = _col(
            rng,
            [(245, 245, 245), (120, 230, 250), (200, 220, 255), (180, 240, 180), (240, 200, 230)][
                rng.integers(5)
            ],
            10,
        )
        tilt = rng.uniform(-0.12, 0.12) * w
        c.poly(
            [
                (fx - w / 2 + tilt, fy - h),
                (fx + w / 2 + tilt, fy - h),
                (fx + w / 2 - tilt, fy),
                (fx - w / 2 - tilt, fy),
            ],
            paper,
        )
        ink = _col(rng, [(20, 20, 20), (30, 30, 200), (200, 40, 40)][rng.integers(3)], 10)
        rows = int(rng.integers(3, 7))
        for r in range(rows):  # lines of print: a headline, then small text
            ry = fy - h + (r + 1) * h / (rows + 1)
            span = w * (0.8 if r == 0 else rng.uniform(0.4, 0.75))
            c.line(
                (fx - span / 2, ry), (fx + span / 2, ry), ink, max(h / (rows * 3.5) * (2 if r == 0 else 1), 1)
            )
        if rng.random() < 0.4:  # tear-off phone strips at the bottom
            for k in range(5):
                sx = fx - w / 2 + (k + 0.5) * w / 5
                c.line((sx, fy), (sx, fy + 0.12 * p), paper, max(w / 14, 1))


PAINTERS: dict[str, Painter] = {
    "garbage": garbage,
    "street_stall": street_stall,
    "pothole": pothole,
    "debris_pile": debris_pile,
    "illegal_ad": illegal_ad,
    "bicycle": bicycle,
    "vehicle": vehicle,
    "person": person,
}


def distractor(c: Canvas, v: StreetView, rng: np.random.Generator, x: float, y: float) -> None:
    """Things a street has that are not issues: manholes, bins, signs, planters, puddle-dark patches."""
    p = v.ppm(y)
    kind = rng.integers(4)
    if kind == 0:  # manhole cover: round, grey, a hole-sized thing that is not a pothole
        c.ellipse((x, y - 0.15 * p), (0.35 * p, 0.15 * p), (70, 75, 80), label=False)
        c.ring((x, y - 0.15 * p), 0.2 * p, (95, 100, 105), 1, label=False)
    elif kind == 1:  # a proper litter bin is not garbage
        c.rect(x - 0.25 * p, y - 0.9 * p, x + 0.25 * p, y, (40, 90, 40), label=False)
        c.rect(x - 0.28 * p, y - 0.95 * p, x + 0.28 * p, y - 0.85 * p, (30, 60, 30), label=False)
    elif kind == 2:  # a planter box
        c.rect(x - 0.5 * p, y - 0.5 * p, x + 0.5 * p, y, (80, 80, 90), label=False)
        c.ellipse((x, y - 0.6 * p), (0.5 * p, 0.3 * p), (40, 110, 50), label=False)
    else:  # a traffic sign on a post: a printed sign that is not a flyer
        c.line((x, y), (x, y - 2.2 * p), (120, 120, 120), max(0.05 * p, 1), label=False)
        if rng.random() < 0.5:
            c.ellipse((x, y - 2.2 * p), (0.3 * p, 0.3 * p), (40, 40, 200), label=False)
            c.ellipse((x, y - 2.2 * p), (0.22 * p, 0.22 * p), (240, 240, 240), label=False)
        else:
            c.rect(x - 0.3 * p, y - 2.5 * p, x + 0.3 * p, y - 1.9 * p, (160, 80, 20), label=False)
