"""Lighting, weather and camera artefacts applied over a painted scene.

Lighting is where deployed street models fail most, so dusk and night are not just darker: colours
shift, noise rises, and lamps and headlights light up local pools that the model must see through.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.pipeline.canvas import Canvas
from models.pipeline.view import Conditions, StreetView


def apply(c: Canvas, view: StreetView, cond: Conditions, rng: np.random.Generator) -> np.ndarray:
    img = c.image.astype(np.float32)
    h, w = img.shape[:2]
    if cond.lighting == "noon":
        img *= rng.uniform(0.95, 1.15)
        img += rng.uniform(-8, 8, 3)
    elif cond.lighting == "dusk":
        img *= rng.uniform(0.5, 0.7) * np.array([0.8, 0.95, 1.12], dtype=np.float32)
    else:
        img *= rng.uniform(0.22, 0.35) * np.array([1.15, 1.0, 0.9], dtype=np.float32)
        # street lamps light pools on the ground: warm sodium or white LED
        if not view.plaza:
            rows = getattr(view, "pole_rows", [])
            for y in rows:
                p = view.ppm(y)
                x = view.ground_x(view.pole_lateral - 1.0 * np.sign(view.pole_lateral), y)
                col = (90, 170, 255) if rng.random() < 0.5 else (230, 235, 240)
                c.light((x, y - 0.5 * p), 2.5 * p, col, rng.uniform(0.25, 0.45))
                c.light((x, y - 6.4 * p), 0.3 * p, col, 1.0)
        else:
            for _ in range(int(rng.integers(2, 6))):
                x, y = rng.uniform(0, w), rng.uniform(max(view.horizon, 0), h)
                c.light((x, y), 2.5 * view.ppm(y), (140, 200, 255), rng.uniform(0.2, 0.4))
    img += c.glow * (0.3 if cond.lighting == "noon" else 1.0)
    if cond.weather == "rain":
        img *= 0.85
        img = _rain(img, rng)
    elif cond.weather == "fog":
        depth = np.clip(
            1.0 - (np.arange(h, dtype=np.float32) - view.horizon) / (h - view.horizon + 1e-3), 0, 1
        )
        density = rng.uniform(0.35, 0.65) * depth[:, None, None] ** 1.5
        fog_level = {"noon": 200.0, "dusk": 120.0, "night": 45.0}[cond.lighting]
        img = img * (1 - density) + fog_level * density
    return camera(np.clip(img, 0, 255), cond, rng)


def _rain(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    streaks = np.zeros((h, w), dtype=np.float32)
    n = int(rng.uniform(0.002, 0.006) * h * w)
    xs, ys = rng.uniform(0, w, n), rng.uniform(0, h, n)
    length = rng.uniform(0.03, 0.07) * h
    slant = rng.uniform(-0.3, 0.3)
    for x, y in zip(xs, ys, strict=False):
        cv2.line(streaks, (int(x), int(y)), (int(x + slant * length), int(y + length)), 1.0, 1, cv2.LINE_AA)
    return img * (1 - 0.25 * streaks[..., None]) + 200 * 0.25 * streaks[..., None]


def camera(img: np.ndarray, cond: Conditions, rng: np.random.Generator) -> np.ndarray:
    """Sensor and codec artefacts: motion blur, noise (worse in the dark), JPEG blocking."""
    if rng.random() < 0.3:
        k = int(rng.integers(3, 7))
        kernel = np.zeros((k, k), dtype=np.float32)
        if rng.random() < 0.5:
            kernel[k // 2, :] = 1.0 / k
        else:
            np.fill_diagonal(kernel, 1.0 / k)
        img = cv2.filter2D(img, -1, kernel)
    sigma = {"noon": 3.0, "dusk": 6.0, "night": 9.0}[cond.lighting] * rng.uniform(0.5, 1.3)
    img = img + rng.normal(0, sigma, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    quality = int(rng.integers(35, 95))
    ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else out
