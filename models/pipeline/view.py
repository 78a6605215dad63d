"""A pole camera's view of a street: ground-plane geometry and the static background.

The camera looks along the street from a pole on the pavement. With a level pinhole camera at height
``cam_h`` metres, a ground point seen at image row ``y`` is ``(y - horizon) / cam_h`` pixels per metre
away, and lateral offset ``X`` metres maps to ``x = vanish_x + X * ppm``; that one relation places and
scales every object, so far things are small and high in the frame as on a real pole camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.pipeline.canvas import Canvas

LIGHTING = ("noon", "dusk", "night")
WEATHER = ("clear", "rain", "fog")


@dataclass(frozen=True)
class Conditions:
    lighting: str
    weather: str


@dataclass(frozen=True)
class Layout:
    """Where things are on the ground, in metres across the street (negative: camera's left)."""

    road_left: float
    road_right: float
    lanes: int
    wall_left: float  # building line on the near pavement
    wall_right: float  # building line across the street
    crosswalk_y: float | None  # image row of a zebra crossing, if any
    plaza: bool  # a pedestrian square (crowd scenes): no road at all


class StreetView:
    """One camera placement: geometry plus a background painted once per lighting condition."""

    def __init__(self, rng: np.random.Generator, width: int, height: int, *, plaza: bool = False) -> None:
        self.width, self.height = width, height
        self.plaza = plaza
        if plaza:
            self.horizon = height * rng.uniform(-0.35, 0.12)
            self.cam_h = rng.uniform(7.0, 12.0)
        else:
            self.horizon = height * rng.uniform(0.16, 0.34)
            self.cam_h = rng.uniform(4.5, 7.5)
        self.vanish_x = width * rng.uniform(0.35, 0.65)
        self.focal = width * rng.uniform(0.75, 1.0)  # pixels; about a 55-65 degree field of view
        side = rng.choice([-1.0, 1.0])  # which side of the road the pole stands on
        road_w = rng.uniform(6.5, 11.0)
        near = rng.uniform(1.5, 4.0)
        if side > 0:
            left, right = near, near + road_w
        else:
            left, right = -near - road_w, -near
        self.layout = Layout(
            road_left=left,
            road_right=right,
            lanes=2 if road_w < 9 else 3,
            wall_left=-rng.uniform(3.5, 6.0) if side > 0 else left - rng.uniform(3.0, 6.0),
            wall_right=right + rng.uniform(3.0, 6.0) if side > 0 else rng.uniform(3.5, 6.0),
            crosswalk_y=height * rng.uniform(0.62, 0.9) if rng.random() < 0.35 else None,
            plaza=plaza,
        )
        self.palette = {
            "road": rng.uniform(70, 105),
            "pave": np.array([rng.uniform(140, 180), rng.uniform(140, 180), rng.uniform(135, 175)]),
            "wall_l": rng.uniform(90, 200, size=3),
            "wall_r": rng.uniform(90, 200, size=3),
            "tile": rng.uniform(0.85, 0.95),
        }
        self._seed = int(rng.integers(1 << 31))
        self._cache: dict[str, np.ndarray] = {}

    # -- geometry -----------------------------------------------------------------------------------
    def ppm(self, y: float) -> float:
        """Pixels per metre for something standing on the ground at image row ``y``."""
        return max((y - self.horizon) / self.cam_h, 1e-3)

    def ground_x(self, lateral: float, y: float) -> float:
        return self.vanish_x + lateral * self.ppm(y)

    def lateral(self, x: float, y: float) -> float:
        return (x - self.vanish_x) / self.ppm(y)

    def row_at(self, distance: float) -> float:
        """The image row of a ground point ``distance`` metres ahead of the camera."""
        return self.horizon + self.focal * self.cam_h / max(distance, 1e-3)

    def distance(self, y: float) -> float:
        return self.focal * self.cam_h / max(y - self.horizon, 1e-3)

    def min_row(self) -> float:
        """The farthest ground row worth placing objects on (they are a few pixels tall there)."""
        return max(self.horizon + 0.07 * self.height, 0.0)

    # -- background ---------------------------------------------------------------------------------
    def background(self, lighting: str) -> np.ndarray:
        if lighting not in self._cache:
            self._cache[lighting] = self._paint(lighting)
        return self._cache[lighting].copy()

    def _paint(self, lighting: str) -> np.ndarray:
        rng = np.random.default_rng(self._seed)
        w, h, hz = self.width, self.height, self.horizon
        img = np.zeros((h, w, 3), dtype=np.uint8)
        top = {"noon": (235, 200, 150), "dusk": (140, 110, 170), "night": (45, 25, 15)}[lighting]
        low = {"noon": (250, 235, 215), "dusk": (120, 170, 245), "night": (70, 50, 40)}[lighting]
        if hz > 0:
            t = np.linspace(0, 1, max(int(hz) + 1, 1))[:, None]
            sky = (1 - t) * np.array(top) + t * np.array(low)
            img[: len(t)] = sky[:, None, :].astype(np.uint8)
        c = Canvas(img)
        lay = self.layout
        bottom = h * 1.02
        pave = tuple(float(v) for v in self.palette["pave"])
        c.poly([(-w, max(hz, 0)), (2 * w, max(hz, 0)), (2 * w, bottom), (-w, bottom)], pave)
        self._texture_ground(img, rng)
        if not lay.plaza:
            g = self.palette["road"]
            self._ground_strip(c, lay.road_left, lay.road_right, (g, g, g + 3))
            self._kerbs_and_markings(c, rng)
            self._wall(c, rng, lay.wall_left, self.palette["wall_l"])
            self._wall(c, rng, lay.wall_right, self.palette["wall_r"])
            self._poles(c, rng)
        else:
            self._plaza_details(c, rng)
        return img

    def _ground_strip(self, c: Canvas, x_left: float, x_right: float, color: tuple) -> None:
        y0 = max(self.horizon + 0.5, 0.0)
        yb = self.height * 1.02
        c.poly(
            [
                (self.ground_x(x_left, y0), y0),
                (self.ground_x(x_right, y0), y0),
                (self.ground_x(x_right, yb), yb),
                (self.ground_x(x_left, yb), yb),
            ],
            color,
            label=False,
        )

    def _texture_ground(self, img: np.ndarray, rng: np.random.Generator) -> None:
        h, w = img.shape[:2]
        noise = rng.normal(0, 6, size=(h // 4 + 1, w // 4 + 1)).astype(np.float32)
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
        y0 = max(int(self.horizon), 0)
        region = img[y0:].astype(np.float32) + noise[y0:, :, None]
        img[y0:] = np.clip(region, 0, 255).astype(np.uint8)

    def _kerbs_and_markings(self, c: Canvas, rng: np.random.Generator) -> None:
        lay = self.layout
        y0 = max(self.horizon + 1, 0.0)
        yb = self.height * 1.02
        for edge in (lay.road_left, lay.road_right):
            self._ground_strip(c, edge - 0.15, edge + 0.15, (185, 185, 185))
        white = (225, 225, 220)
        lane_w = (lay.road_right - lay.road_left) / lay.lanes
        for i in range(1, lay.lanes):
            x = lay.road_left + i * lane_w
            # dashes: 3 m painted, 6 m gap
            d_near = self.distance(yb)
            phase = rng.uniform(0, 9)
            for k in range(40):
                d1 = d_near + phase + 9 * k
                y1, y2 = self.row_at(d1 + 3), self.row_at(d1)
                if y2 < y0 + 1:
                    break
                c.poly(
                    [
                        (self.ground_x(x - 0.08, y1), y1),
                        (self.ground_x(x + 0.08, y1), y1),
                        (self.ground_x(x + 0.08, y2), y2),
                        (self.ground_x(x - 0.08, y2), y2),
                    ],
                    white,
                    label=False,
                )
        if lay.crosswalk_y is not None:
            yc = lay.crosswalk_y
            y1, y2 = self.row_at(self.distance(yc) + 3.0), yc
            n = int((lay.road_right - lay.road_left) / 1.0)
            for i in range(n):
                xa = lay.road_left + i * 1.0 + 0.2
                c.poly(
                    [
                        (self.ground_x(xa, y1), y1),
                        (self.ground_x(xa + 0.5, y1), y1),
                        (self.ground_x(xa + 0.5, y2), y2),
                        (self.ground_x(xa, y2), y2),
                    ],
                    white,
                    label=False,
                )

    def _wall(self, c: Canvas, rng: np.random.Generator, lateral: float, color: np.ndarray) -> None:
        """A building facade: a vertical plane along the street at ``lateral`` metres."""
        height_m = rng.uniform(8, 20)
        yb = self.height * 1.5
        y0 = self.horizon + 0.5
        base_near = (self.ground_x(lateral, yb), yb)
        base_far = (self.ground_x(lateral, y0), y0)
        top_near = (base_near[0], yb - height_m * self.ppm(yb))
        top_far = (base_far[0], y0 - height_m * self.ppm(y0))
        col = tuple(float(v) for v in color)
        c.poly([base_far, base_near, top_near, top_far], col, label=False)
        # windows and shop fronts, placed at even depth steps along the facade
        d_near = self.distance(min(yb, self.height * 1.0))
        dark = tuple(float(v) * 0.45 for v in color)
        bay = rng.uniform(3.0, 5.0)
        for k in range(60):
            ya, yb2 = self.row_at(d_near + k * bay + bay * 0.6), self.row_at(d_near + k * bay)
            if yb2 < self.horizon + 2:
                break
            pa, pb = self.ppm(ya), self.ppm(yb2)
            xa, xb = self.ground_x(lateral, ya), self.ground_x(lateral, yb2)
            for floor in range(int(height_m / 3.2)):
                lo, hi = 0.9 + floor * 3.2, 2.5 + floor * 3.2
                c.poly(
                    [(xa, ya - lo * pa), (xb, yb2 - lo * pb), (xb, yb2 - hi * pb), (xa, ya - hi * pa)],
                    dark,
                    label=False,
                )

    def _poles(self, c: Canvas, rng: np.random.Generator) -> None:
        """Lamp posts along the kerb (also where flyers get posted): kept so objects can use them."""
        lay = self.layout
        side = lay.road_left - 0.5 if lay.road_left > 0 else lay.road_right + 0.5
        if lay.road_left < 0:
            side = lay.road_right + 0.5
        self.pole_lateral = side
        self.pole_rows: list[float] = []
        d_near = self.distance(self.height * 1.2)
        spacing = rng.uniform(12.0, 25.0)
        for k in range(12):
            y = self.row_at(d_near + rng.uniform(0.0, 4.0) + k * spacing)
            if y < self.horizon + 4:
                break
            p = self.ppm(y)
            x = self.ground_x(side, y)
            c.rect(x - 0.08 * p, y - 6.5 * p, x + 0.08 * p + 0.5, y, (70, 75, 80), label=False)
            c.line((x, y - 6.5 * p), (x - 1.2 * p * np.sign(side), y - 6.6 * p), (70, 75, 80), 0.12 * p)
            self.pole_rows.append(y)

    def _plaza_details(self, c: Canvas, rng: np.random.Generator) -> None:
        # paving joints every ~1.5 m give the square its perspective
        col = tuple(float(v) * self.palette["tile"] for v in self.palette["pave"])
        y0 = max(self.horizon + 1, 0.0)
        for xm in np.arange(-40, 40, 1.5):
            c.line(
                (self.ground_x(xm, y0), y0),
                (self.ground_x(xm, self.height), self.height),
                col,
                1,
                label=False,
            )
        d_near = self.distance(self.height)
        for k in range(80):
            y = self.row_at(d_near + k * 1.5)
            if y < y0:
                break
            c.line((0, y), (self.width, y), col, 1, label=False)
        for _ in range(rng.integers(0, 4)):  # planters and benches: people-sized clutter that is not people
            y = rng.uniform(max(self.horizon, 0) + 10, self.height)
            x = rng.uniform(0, self.width)
            p = self.ppm(y)
            c.rect(x - 0.8 * p, y - 0.5 * p, x + 0.8 * p, y, (60, 110, 70), label=False)
