"""The default camera (``edgectl config init``) on real footage: ms per model and frames per second.

    python bench/default_camera.py [--rounds 3] [--frames 40]

The camera of ``agent/config/example.toml`` with all its models (INT8: street-vision, crowd-counter)
watches OpenCV's real street-corner clip (768x576, Debian's opencv-doc). Interleaved frame by frame:
each model's ``session.run`` alone on a tensor prepared beforehand, the whole
``CameraPipeline.process`` (letterboxes, all sessions, adapters, tracking, rules) with motion gating
off, so every frame is inferred, and the same camera as it was before street-vision (nanodet-coco and
street-issues-rw apart, each running the backbone). The goal is >= 5 frames per second on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config.camera import CameraConfig  # noqa: E402
from agent.vision.engine import EngineOptions, ModelPool  # noqa: E402
from agent.vision.pipeline import CameraPipeline  # noqa: E402
from agent.vision.sources import offline_frames  # noqa: E402
from models.pipeline.footage import opencv_data  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40, help="clip frames per round")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model")
    args = parser.parse_args()

    example = tomllib.loads((ROOT / "agent" / "config" / "example.toml").read_text(encoding="utf-8"))
    raw = example["cameras"][0]
    raw["source"] = str(opencv_data("vtest.avi"))
    raw["models"] = [str(ROOT / m) for m in raw["models"]]
    raw["motion"] = {"enabled": False}
    camera = CameraConfig.model_validate(raw)
    pool = ModelPool(EngineOptions(intra_op_threads=args.threads))
    engines = [pool.get(m) for m in camera.models]
    frames = list(offline_frames(camera.source, camera.fps))[: args.frames]
    pipeline = CameraPipeline(camera, engines)
    # the camera before street-vision: the same labels from two models that each run the backbone
    two = [ROOT / "models" / "nanodet-coco", ROOT / "models" / "street-issues-rw"]
    old_raw = {**raw, "models": [str(m) for m in two] + [str(m) for m in camera.models[1:]]}
    old_raw["model_labels"] = {"nanodet-coco": ["person", "bicycle", "vehicle"]}
    old_camera = CameraConfig.model_validate(old_raw)
    old_pipeline = CameraPipeline(old_camera, [pool.get(m) for m in old_camera.models])
    tensors = []
    for e in engines:
        prep = e.preprocessor()
        prep(frames[0].image)
        tensors.append(prep.tensor.copy())

    per_model: dict[str, list[float]] = {e.manifest.id: [] for e in engines}
    whole: list[float] = []
    before: list[float] = []
    for _ in range(args.rounds):
        for frame in frames:
            for e, tensor in zip(engines, tensors, strict=True):
                t = time.perf_counter()
                e.run(tensor)
                per_model[e.manifest.id].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            pipeline.process(frame)
            whole.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            old_pipeline.process(frame)
            before.append((time.perf_counter() - t) * 1000)

    print(
        f"default camera on {Path(camera.source).name}, {len(frames)} frames x {args.rounds} rounds, {args.threads} threads"
    )
    floor = 0.0
    for e in engines:
        med = statistics.median(per_model[e.manifest.id])
        floor += med
        i = e.manifest.input
        print(
            f"  {e.manifest.id} {e.manifest.version} ({i.width}x{i.height}): {med:.2f} ms/frame (session.run)"
        )
    med = statistics.median(whole)
    print(
        f"  models together: {floor:.2f} ms; whole pipeline: {med:.2f} ms/frame = {1000 / med:.1f} frames/s"
    )
    old = statistics.median(before)
    print(
        f"  before street-vision (nanodet-coco + street-issues-rw + counter): {old:.2f} ms/frame = "
        f"{1000 / old:.1f} frames/s; street-vision camera {old / med:.2f}x its frames per second"
    )
    print(f"  goal >= 5 frames/s: {'met' if 1000 / med >= 5 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
