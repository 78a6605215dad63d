"""An integrator's own export through the whole pipeline against bare ``session.run``, side by side.

    python bench/own_model.py --model out/bench/yolov8n.onnx [--frames 40] [--rounds 3] [--seconds 6]

The model is a YOLOv8n-architecture Ultralytics export at 640 (random weights are fine for speed):

    PYTHONPATH=tests/vision/oracle/shim .venv-ultra/bin/python -c \\
        "from ultralytics import YOLO; YOLO('yolov8n.yaml').export(format='onnx', imgsz=640)"

(see tests/vision/oracle/make_fixture.py for that venv). Frames are the bundled clip (640x360).

One camera, interleaved in blocks of 5 frames over several rounds (the first of each block untimed):

- bare: ``session.run`` on a session with onnxruntime's default options (threads spin) on tensors
  prepared beforehand: what the model costs by itself;
- bare, engine's spin / no spin: the same on the pipeline's own sessions (spinning on, off): what
  the session settings alone cost;
- pipeline, spin / no spin: ``CameraPipeline.process`` (letterbox, session, decode, NMS, tracker,
  rules), motion gating off, the engine with spinning on or off;
- with ``--baseline REV``: the same two pipelines from the ``agent`` package as it was at git
  revision REV (extracted to a temporary folder and imported as ``agent_baseline``), so a change is
  measured against what it replaced in the same run, frame for frame.

Own code per frame is each pipeline frame's time less its own ``session.run``. Then, apart, where it
goes: the steps of ``process`` timed one by one after each run (spinning off), as they are and with
objects planted in the model's output (a trained model's view of a busy street: ``--objects`` boxes,
each scored on several neighbouring anchors, as YOLO heads do), so NMS and tracking do real work.

Four cameras, alternated in rounds of ``--seconds``: four threads each running its own camera's
pipeline on the shared session (as the agent runs cameras), spinning off and on, against four
independent bare loops (four threads, each with its own default session). Total frames per second.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config.camera import CameraConfig  # noqa: E402
from agent.vision.engine import EngineOptions, load_engine  # noqa: E402
from agent.vision.frames import Frame  # noqa: E402
from agent.vision.pipeline import CameraPipeline, FrameInfo  # noqa: E402
from agent.vision.sources import offline_frames  # noqa: E402


def default_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def camera(model: Path, name: str, config: ModuleType | None = None) -> CameraConfig:
    cls = config or importlib.import_module("agent.config.camera")
    return cls.CameraConfig(
        id=name, source="demo/clip/street.mp4", models=[model], motion=cls.MotionConfig(enabled=False)
    )


def baseline_package(rev: str) -> str:
    """The ``agent`` package as of git revision ``rev``, importable as ``agent_baseline``."""
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "agent"], check=True, capture_output=True)
    where = Path(tempfile.mkdtemp(prefix="own-model-baseline-"))
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        archive.extractall(where, filter="data")
    (where / "agent").rename(where / "agent_baseline")
    sys.path.insert(0, str(where))
    return "agent_baseline"


def pipelines(model: Path, package: str, tag: str = "") -> dict[str, tuple[object, object]]:
    """Engine and pipeline, spinning on and off, from ``package`` (this tree's or a baseline's)."""
    engine = importlib.import_module(f"{package}.vision.engine")
    pipeline = importlib.import_module(f"{package}.vision.pipeline")
    config = importlib.import_module(f"{package}.config.camera")
    out = {}
    for spin in (True, False):
        e = engine.load_engine(model, engine.EngineOptions(spinning=spin, warmup_runs=3))
        pipe = pipeline.CameraPipeline(camera(model, f"cam-{spin}", config), [e])
        out[f"pipeline{tag}, {'spin' if spin else 'no spin'}"] = (e, pipe)
    return out


def one_camera(
    model: Path, frames: list[Frame], rounds: int, baseline: str | None, block: int = 5
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    pipes = pipelines(model, "agent")
    if baseline:
        pipes |= pipelines(model, baseline_package(baseline), f" ({baseline})")
    engines = {True: pipes["pipeline, spin"][0], False: pipes["pipeline, no spin"][0]}
    bare = default_session(model)
    bare_name = bare.get_inputs()[0].name
    prep = engines[True].preprocessor()
    prep(frames[0].image)
    tensor = prep.tensor.copy()
    for _ in range(3):
        bare.run(None, {bare_name: tensor})

    def timed(step: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        step()
        return (time.perf_counter() - t0) * 1000

    steps: dict[str, Callable[[Frame], object]] = {
        "bare": lambda f: bare.run(None, {bare_name: tensor}),
        "bare, engine's spin": lambda f: engines[True].session.run(None, {engines[True].input_name: tensor}),
        "bare, no spin": lambda f: engines[False].session.run(None, {engines[False].input_name: tensor}),
    }
    for name, (_, pipe) in pipes.items():
        steps[name] = pipe.process  # type: ignore[attr-defined]
    times: dict[str, list[float]] = {k: [] for k in steps}
    own: dict[str, list[float]] = {k: [] for k in pipes}
    names = list(steps)
    for r in range(rounds):
        for b, start in enumerate(range(0, len(frames), block)):
            # Blocks of frames, the variants' order rotated each block. The first frame of a block is
            # not timed: a spinning session's threads still hold the cores just after its block.
            k = (b + r) % len(names)
            for name in names[k:] + names[:k]:
                for j, frame in enumerate(frames[start : start + block]):
                    ms = timed(lambda: steps[name](frame))  # noqa: B023
                    if j:
                        times[name].append(ms)
                        if name in pipes:
                            # the same frame's own code: everything but the session's run
                            own[name].append(ms - pipes[name][0].stats.last_ms)  # type: ignore[attr-defined]
    return times, own


def street(
    objects: int, rng: np.random.Generator, n_anchors: int
) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """``objects`` boxes (cx, cy, w, h in input pixels) of 4 classes, each scored on 6 anchors."""
    out = []
    for k in range(objects):
        xywh = np.asarray(
            [rng.uniform(40, 600), rng.uniform(180, 460), rng.uniform(20, 120), rng.uniform(30, 160)]
        )
        out.append((xywh, k % 4, rng.choice(n_anchors, 6, replace=False)))
    return out


def plant(output: np.ndarray, objects: list[tuple[np.ndarray, int, np.ndarray]], k: int) -> None:
    """Write the objects into a YOLOv8 output ``[1, 4 + C, N]`` as frame ``k`` sees them: walking
    slowly, each on neighbouring anchors a pixel apart with falling scores, as YOLO heads give them."""
    for xywh, cls, anchors in objects:
        for j, a in enumerate(anchors):
            output[0, :4, a] = xywh + np.asarray((0.5 * k + j * 0.5, -j * 0.5, 0, 0))
            output[0, 4 + cls, a] = 0.9 - 0.05 * j


def stages(model: Path, frames: list[Frame], objects: int, runs: int) -> dict[str, dict[str, float]]:
    """Median ms of each step of ``process`` after a real run (spinning off), without and with objects."""
    engine = load_engine(model, EngineOptions(spinning=False, warmup_runs=3))
    out: dict[str, dict[str, float]] = {}
    for planted in (0, objects):
        pipe = CameraPipeline(camera(model, f"stages-{planted}"), [engine])
        m = pipe.detectors[0]
        objects = street(planted, np.random.default_rng(0), engine.session.get_outputs()[0].shape[2])
        t: dict[str, list[float]] = {
            "letterbox and conversion": [],
            "decode and NMS": [],
            "tracker and rules": [],
        }
        found = []
        for k in range(runs):
            frame = frames[k % len(frames)]
            t0 = time.perf_counter()
            box = m.prep(frame.image)
            t1 = time.perf_counter()
            outputs = engine.run(m.prep.tensor)
            if planted:
                plant(outputs[0], objects, k)
            t2 = time.perf_counter()
            dets = engine.decode(outputs, box, 0, m.manifest)
            t3 = time.perf_counter()
            pipe.rules.update([dets], None, FrameInfo(frame.t, frame.captured_ms, False))
            t4 = time.perf_counter()
            found.append(len(dets))
            for name, ms in zip(t, (t1 - t0, t3 - t2, t4 - t3), strict=True):
                t[name].append(ms * 1000)
        out[f"{planted} objects"] = {k: statistics.median(v) for k, v in t.items()}
        out[f"{planted} objects"]["detections per frame"] = statistics.median(found)
    return out


def run_threads(work: list[Callable[[], None]], seconds: float) -> int:
    """Run each callable in a loop in its own thread for ``seconds``; total iterations."""
    stop = threading.Event()
    counts = [0] * len(work)

    def loop(k: int) -> None:
        while not stop.is_set():
            work[k]()
            counts[k] += 1

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(len(work))]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts)


def four_cameras(model: Path, frames: list[Frame], rounds: int, seconds: float) -> dict[str, list[float]]:
    variants: dict[str, list[Callable[[], None]]] = {}
    for spin in (False, True):
        engine = load_engine(model, EngineOptions(spinning=spin, warmup_runs=3))
        work = []
        for c in range(4):
            pipe = CameraPipeline(camera(model, f"cam{c}"), [engine])
            cursor = iter(range(10**9))

            def step(pipe: CameraPipeline = pipe, cursor=cursor) -> None:
                pipe.process(frames[next(cursor) % len(frames)])

            work.append(step)
        variants[f"4 pipelines, {'spin' if spin else 'no spin'}"] = work
    bare_work = []
    for _ in range(4):
        session = default_session(model)
        name = session.get_inputs()[0].name
        prep = load_engine(model, EngineOptions(warmup_runs=0, self_test=False)).preprocessor()
        prep(frames[0].image)
        tensor = prep.tensor.copy()
        bare_work.append(lambda s=session, n=name, t=tensor: s.run(None, {n: t}))
    variants["4 bare loops"] = bare_work
    fps: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, work in variants.items():
            fps[name].append(run_threads(work, seconds) / seconds)
    return fps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "out" / "bench" / "yolov8n.onnx")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="per variant and round, four cameras")
    parser.add_argument("--baseline", help="git revision whose agent package runs beside this tree's")
    parser.add_argument("--objects", type=int, default=20, help="objects planted for the stage breakdown")
    parser.add_argument("--no-four", action="store_true", help="skip the four-camera part")
    args = parser.parse_args()
    if not args.model.is_file():
        parser.error(f"{args.model}: no such export; the module docstring says how to make one")
    frames = list(offline_frames(str(ROOT / "demo" / "clip" / "street.mp4"), 10.0))[: args.frames]
    print(
        f"{args.model.name}, {len(frames)} frames {frames[0].image.shape[1]}x{frames[0].image.shape[0]}, "
        f"{args.rounds} rounds, onnxruntime {ort.__version__}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    times, own = one_camera(args.model, frames, args.rounds, args.baseline)
    bare = statistics.median(times["bare"])
    width = max(map(len, times))
    print(
        f"one camera: {'variant':<{width}} {'median ms':>10} {'fps':>7} {'vs bare':>8} {'vs same settings':>17}"
    )
    for name, values in times.items():
        med = statistics.median(values)
        # a pipeline against bare session.run on a session with its own spinning setting
        same = "bare, no spin" if name.endswith("no spin") else "bare, engine's spin"
        versus = f"{statistics.median(times[same]) / med:>16.3f}x" if name in own else ""
        print(f"            {name:<{width}} {med:>10.2f} {1000 / med:>7.1f} {bare / med:>7.3f}x {versus}")
    for name, values in own.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"own code per frame ({name}): median {statistics.median(values):.2f} ms, p95 {p95:.2f} ms")
    print(f"where own code goes, median ms after each run, no spin, {len(frames) * args.rounds} frames:")
    for label, steps in stages(args.model, frames, args.objects, len(frames) * args.rounds).items():
        print(f"            {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in steps.items()))
    if args.no_four:
        return 0
    fps = four_cameras(args.model, frames, args.rounds, args.seconds)
    base = statistics.median(fps["4 bare loops"])
    print("four cameras: total frames/s, median of rounds (each round's figure)")
    for name, values in fps.items():
        med = statistics.median(values)
        each = ", ".join(f"{v:.1f}" for v in values)
        print(f"            {name:<22} {med:>7.1f} {med / base:>7.3f}x  ({each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
