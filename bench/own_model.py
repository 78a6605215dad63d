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
  rules), motion gating off, the engine with spinning on or off.

Four cameras, alternated in rounds of ``--seconds``: four threads each running its own camera's
pipeline on the shared session (as the agent runs cameras), spinning off and on, against four
independent bare loops (four threads, each with its own default session). Total frames per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.config.camera import CameraConfig, MotionConfig  # noqa: E402
from agent.vision.engine import EngineOptions, load_engine  # noqa: E402
from agent.vision.pipeline import CameraPipeline  # noqa: E402
from agent.vision.sources import Frame, offline_frames  # noqa: E402


def default_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def camera(model: Path, name: str) -> CameraConfig:
    return CameraConfig(
        id=name, source="demo/clip/street.mp4", models=[model], motion=MotionConfig(enabled=False)
    )


def one_camera(
    model: Path, frames: list[Frame], rounds: int, block: int = 5
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    engines = {
        spin: load_engine(model, EngineOptions(spinning=spin, warmup_runs=3)) for spin in (True, False)
    }
    pipes = {spin: CameraPipeline(camera(model, f"cam-{spin}"), [e]) for spin, e in engines.items()}
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
        "pipeline, spin": lambda f: pipes[True].process(f),
        "pipeline, no spin": lambda f: pipes[False].process(f),
    }
    times: dict[str, list[float]] = {k: [] for k in steps}
    own: dict[str, list[float]] = {"pipeline, spin": [], "pipeline, no spin": []}
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
                        if name.startswith("pipeline"):
                            # the same frame's own code: everything but the session's run
                            spin = name.endswith(", spin")
                            own[name].append(ms - engines[spin].stats.last_ms)
    return times, own


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
    args = parser.parse_args()
    if not args.model.is_file():
        parser.error(f"{args.model}: no such export; the module docstring says how to make one")
    frames = list(offline_frames(str(ROOT / "demo" / "clip" / "street.mp4"), 10.0))[: args.frames]
    print(
        f"{args.model.name}, {len(frames)} frames {frames[0].image.shape[1]}x{frames[0].image.shape[0]}, "
        f"{args.rounds} rounds, onnxruntime {ort.__version__}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    times, own = one_camera(args.model, frames, args.rounds)
    bare = statistics.median(times["bare"])
    print(f"one camera: {'variant':<22} {'median ms':>10} {'fps':>7} {'vs bare':>8}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"            {name:<22} {med:>10.2f} {1000 / med:>7.1f} {bare / med:>7.3f}x")
    for name, values in own.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"own code per frame ({name}): median {statistics.median(values):.2f} ms, p95 {p95:.2f} ms")
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
