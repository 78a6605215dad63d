"""The vision pipeline's cost per frame against its floor and a naive loop, measured side by side.

    python bench/vision_pipeline.py [--rounds 5]

On frames of the bundled clip (640x360, both shipped models, as the demo camera runs them):

- floor: ``session.run`` alone on tensors prepared beforehand (what the models cost by themselves);
- pipeline: ``CameraPipeline.process`` with motion gating off: letterbox into preallocated buffers,
  both sessions, the adapters, tracking and the issue and crowd rules;
- naive: the single-threaded loop an integrator writes first: ``cap.read()`` (the video decode is in
  the loop), ``cv2.dnn.blobFromImage`` per model, the same sessions, the adapters' decode and NMS,
  and ``json.dumps`` of what was found; no tracking or rules;
- decode: ``cap.read()`` alone, which the agent does on each camera's capture thread, overlapped with
  inference, and the naive loop does in line;
- idle street: the pipeline with motion gating on, on a street where nothing moves (one frame with
  sensor noise) and on the clip, counting how many frames it actually infers.

The variants run interleaved, frame by frame, over several rounds; medians are reported with ratios
to the floor. Also prints the process's resident memory after loading the models.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config import parse_config  # noqa: E402
from agent.vision.engine import ModelEngine, ModelPool  # noqa: E402
from agent.vision.frames import Frame  # noqa: E402
from agent.vision.pipeline import CameraPipeline  # noqa: E402
from agent.vision.preprocess import Letterbox  # noqa: E402
from agent.vision.sources import offline_frames  # noqa: E402


def naive_step(frame: np.ndarray, engines: list[ModelEngine]) -> str:
    found = []
    for e in engines:
        spec = e.manifest.input
        blob = cv2.dnn.blobFromImage(frame, spec.scale, (spec.width, spec.height), swapRB=spec.color == "RGB")
        # blobFromImage stretches instead of letterboxing: boxes come back slightly off (cost is the same)
        box = Letterbox.fit(frame.shape[1], frame.shape[0], spec.width, spec.height)
        result = e.decode(e.run(blob), box)
        found.append(repr(result)[:200])
    return json.dumps(found)


class Reader:
    """``cap.read()`` over the clip, reopened at its end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.cap = cv2.VideoCapture(path)

    def read(self) -> np.ndarray:
        ok, image = self.cap.read()
        if not ok:
            self.cap.release()
            self.cap = cv2.VideoCapture(self.path)
            ok, image = self.cap.read()
        return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=60, help="clip frames per round")
    args = parser.parse_args()

    rss0 = psutil.Process().memory_info().rss
    # as the demo reads it: its paths are the repository's, not the config folder's
    path = ROOT / "demo" / "agent.toml"
    config = parse_config(tomllib.loads(path.read_text(encoding="utf-8")), str(path))
    camera = config.cameras[0]
    pool = ModelPool()
    engines = [pool.get(ROOT / m) for m in camera.models]
    rss = psutil.Process().memory_info().rss
    clip_path = str(ROOT / "demo" / "clip" / "street.mp4")
    frames = list(offline_frames(clip_path, camera.fps))[: args.frames]
    gated_off = CameraPipeline(
        camera.model_copy(update={"motion": camera.motion.model_copy(update={"enabled": False})}), engines
    )
    prepared = []
    for e in engines:
        prep = e.preprocessor()
        prep(frames[0].image)
        prepared.append(prep.tensor.copy())

    reader = Reader(clip_path)
    times: dict[str, list[float]] = {"floor": [], "pipeline": [], "naive": [], "decode": []}
    for _ in range(args.rounds):
        for frame in frames:
            t0 = time.perf_counter()
            for e, tensor in zip(engines, prepared, strict=True):
                e.run(tensor)
            t1 = time.perf_counter()
            gated_off.process(frame)
            t2 = time.perf_counter()
            naive_step(reader.read(), engines)
            t3 = time.perf_counter()
            reader.read()
            t4 = time.perf_counter()
            times["decode"].append((t4 - t3) * 1000)
            times["floor"].append((t1 - t0) * 1000)
            times["pipeline"].append((t2 - t1) * 1000)
            times["naive"].append((t3 - t2) * 1000)

    # Motion gating: an idle street (the first frame plus sensor noise) and the clip itself.
    rng = np.random.default_rng(1)
    still = frames[0].image
    idle = [
        Frame(np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8), i, i / camera.fps, 0)
        for i in range(len(frames))
    ]
    gated = {}
    for name, clip in (("idle street", idle), ("clip", frames)):
        pipe = CameraPipeline(camera, engines)
        t0 = time.perf_counter()
        for f in clip:
            pipe.process(f)
        gated[name] = (pipe.stats.inferred, len(clip), (time.perf_counter() - t0) * 1000 / len(clip))

    floor = statistics.median(times["floor"])
    print(
        f"{len(frames)} frames x {args.rounds} rounds, models: {', '.join(f'{e.manifest.id} {e.manifest.version}' for e in engines)}"
    )
    print(f"{'variant':<28} {'median ms/frame':>16} {'vs floor':>9}")
    variants = (
        ("floor", "floor (session.run only)"),
        ("pipeline", "pipeline"),
        ("naive", "naive loop (with decode)"),
        ("decode", "decode (cap.read) alone"),
    )
    for name, label in variants:
        med = statistics.median(times[name])
        print(f"{label:<28} {med:>16.2f} {med / floor:>8.2f}x")
    pipe = statistics.median(times["pipeline"])
    print(
        f"pipeline: {pipe - floor:.2f} ms/frame over the floor; {1000 / pipe:.0f} frames/s = "
        f"{floor / pipe * 100:.0f} % of the floor's {1000 / floor:.0f} frames/s"
    )
    print("motion gating on:")
    for name, (inferred, total, ms) in gated.items():
        print(f"  {name:<14} inferred {inferred}/{total} frames, {ms:.2f} ms/frame ({ms / floor:.2f}x floor)")
    print(
        f"resident memory: {rss / 2**20:.0f} MiB with the models loaded ({(rss - rss0) / 2**20:.0f} MiB for them)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
