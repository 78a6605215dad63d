"""FP32 vs INT8 speed of the shipped models, measured side by side in one run.

    python bench/models_int8.py [--runs 60] [--threads 2]

Prints ms/frame (median of interleaved runs, batch 1, onnxruntime CPU) and the INT8 speed-up for each
shipped model. Accuracy of each variant is in the model cards (it needs the held-out set, see
``python -m models.pipeline.build``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.vision.manifest import load_manifest  # noqa: E402
from models.pipeline.evaluate import time_side_by_side  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{'model':<16} {'FP32 ms':>8} {'INT8 ms':>8} {'INT8 fps':>9} {'speed-up':>9}")
    for name in ("nanodet-coco", "street-issues-rw", "street-issues", "crowd-counter"):
        folder = ROOT / "models" / name
        m = load_manifest(folder)
        paths = {k: folder / f"{name}-{k}.onnx" for k in ("fp32", "int8")}
        ms = time_side_by_side(paths, m.input.width, m.input.height, runs=args.runs, threads=args.threads)
        print(
            f"{name:<16} {ms['fp32']:>8.2f} {ms['int8']:>8.2f} {1000 / ms['int8']:>9.0f} "
            f"{ms['fp32'] / ms['int8']:>8.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
