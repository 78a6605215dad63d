"""How many people a snapshot shows unblurred: fail-closed (issue region) against the old full frame.

On the labelled real footage (models/footage/vtest: OpenCV's vtest.avi, people labelled by eye) and
OpenCV's messi5.jpg. A labelled person is *shown* when at least a third of its box is in the
snapshot, and *exposed* when under half of what is shown of it is blurred. Issues are put at nine
places (a 3x3 grid of boxes a tenth of the frame), as a pothole or a bag of garbage would be.

    .venv/bin/python -m bench.snapshot_privacy [--frames N]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from agent.config.camera import SnapshotConfig
from agent.vision.detections import Detections
from agent.vision.engine import ModelEngine, load_engine
from agent.vision.faces import FaceDetector, load_face_detector
from agent.vision.privacy import Box, Detect, Found, encode_within, issue_region, redact, render
from models.pipeline.footage import OPENCV_DATA, load_footage

ROOT = Path(__file__).resolve().parents[1]
SHOWN = 1 / 3
COVERED = 0.5
GRID = [(x, y) for y in (0.25, 0.5, 0.75) for x in (0.25, 0.5, 0.75)]


def detector(engine: ModelEngine) -> Detect:
    prep = engine.preprocessor()

    def detect(image: np.ndarray) -> Found:
        dets = engine.infer(image, prep)
        assert isinstance(dets, Detections)
        return [(dets, engine.manifest.labels)]

    return detect


def _mask(shape: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    h, w = shape
    mask = np.zeros((h, w), bool)
    for x1, y1, x2, y2 in boxes:
        mask[int(y1 * h) : int(np.ceil(y2 * h)), int(x1 * w) : int(np.ceil(x2 * w))] = True
    return mask


def exposure(truth: list[Box], region: Box, blurred: np.ndarray, shape: tuple[int, int]) -> tuple[int, int]:
    """(shown, exposed) of the truth boxes in a snapshot of ``region`` whose blurred pixels are set."""
    shown = exposed = 0
    rx1, ry1, rx2, ry2 = region
    h, w = shape
    for x1, y1, x2, y2 in truth:
        ix1, iy1, ix2, iy2 = max(x1, rx1), max(y1, ry1), min(x2, rx2), min(y2, ry2)
        if ix2 <= ix1 or iy2 <= iy1 or (ix2 - ix1) * (iy2 - iy1) < SHOWN * (x2 - x1) * (y2 - y1):
            continue
        shown += 1
        a, b = int((ix1 - rx1) / (rx2 - rx1) * w), int((iy1 - ry1) / (ry2 - ry1) * h)
        c, d = int(np.ceil((ix2 - rx1) / (rx2 - rx1) * w)), int(np.ceil((iy2 - ry1) / (ry2 - ry1) * h))
        part = blurred[b:d, a:c]
        if part.size == 0 or part.mean() < COVERED:
            exposed += 1
    return shown, exposed


def measure(n_frames: int | None) -> dict:
    engine = load_engine(ROOT / "models" / "nanodet-coco")
    faces: FaceDetector = load_face_detector(ROOT / "models" / "blazeface")
    detect = detector(engine)
    footage = load_footage("vtest")
    frames = [*footage.tune, *footage.test][:n_frames]
    config = SnapshotConfig(enabled=True)
    full = (0.0, 0.0, 1.0, 1.0)
    ways = {
        # The old behaviour: the whole frame, only what the frame's detector found blurred.
        "old_full_frame": (False, False),
        "full_frame_new_blur": (False, True),
        "issue_region_frame_dets_only": (True, False),
        "fail_closed": (True, True),
    }
    keys = ("snapshots", "sent", "shown", "exposed", "shown_all", "exposed_all")
    totals = {k: dict.fromkeys(keys, 0) for k in ways}
    checked = {"snapshots": 0, "with_person": 0, "with_face": 0}
    started = time.perf_counter()
    for frame in frames:
        truth = [t.box for t in frame.truth if t.label == "person" and not t.difficult]
        everyone = [t.box for t in frame.truth if t.label == "person"]
        found = detect(frame.image)
        regions = [issue_region((x - 0.05, y - 0.05, x + 0.05, y + 0.05), config) for x, y in GRID]
        for name, (cut, new) in ways.items():
            for region in regions if cut else [full]:
                out, boxes = redact(
                    frame.image, region, found, config, faces if new else None, detect if new else None
                )
                t = totals[name]
                t["snapshots"] += 1
                if out is None:
                    continue
                mask = _mask(out.shape[:2], boxes)
                shown, exposed = exposure(truth, region, mask, out.shape[:2])
                shown_all, exposed_all = exposure(everyone, region, mask, out.shape[:2])
                t["sent"] += 1
                t["shown"] += shown
                t["exposed"] += exposed
                t["shown_all"] += shown_all
                t["exposed_all"] += exposed_all
                if name == "fail_closed":
                    sent = as_sent(out, config)
                    checked["snapshots"] += 1
                    checked["with_person"] += people(detect(sent)) > 0
                    checked["with_face"] += len(faces(sent, config.face_confidence)) > 0
    return {
        "footage": f"{footage.source}: {len(frames)} labelled frames, {len(GRID)} issue places each",
        "people": ways_doc(),
        "per_way": totals,
        "fail_closed_outputs_checked": checked,
        "seconds": round(time.perf_counter() - started, 1),
        "messi5": _photo(OPENCV_DATA / "messi5.jpg", faces, detect, config),
    }


def ways_doc() -> str:
    return (
        "shown: labelled people with a third of their box in a sent snapshot; exposed: shown with "
        "under half of the shown part blurred; _all: difficult ones (small, mostly hidden) too"
    )


def _photo(path: Path, faces: FaceDetector, detect: Detect, config: SnapshotConfig) -> dict:
    """People (the detector) and faces (BlazeFace) in the old and new full-frame output of a photo."""
    image = cv2.imread(str(path))
    found = detect(image)
    full = (0.0, 0.0, 1.0, 1.0)
    out: dict = {"input": {"people": people(found), "face_boxes": len(faces(image, config.face_confidence))}}
    for name, args in (("old", (None, None)), ("new", (faces, detect))):
        img = render(image, full, found, config, *args)
        if img is None:
            out[name] = "not sent"
            continue
        sent = as_sent(img, config)
        out[name] = {"people": people(detect(sent)), "face_boxes": len(faces(sent, config.face_confidence))}
    return out


def as_sent(image: np.ndarray, config: SnapshotConfig) -> np.ndarray:
    """The image as the JPEG that leaves the device decodes."""
    jpeg = encode_within(image, config)
    assert jpeg is not None
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def people(found: Found) -> int:
    return sum(int(sum(c[int(k)] == "person" for k in d.class_id)) for d, c in found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="first N labelled frames only")
    args = parser.parse_args()
    print(json.dumps(measure(args.frames), indent=2))


if __name__ == "__main__":
    main()
