"""Detector training step cost: float32 against bfloat16 autocast with channels-last, side by side.

    python bench/train_step.py [--rounds 6] [--batch 8]

Builds the shipped detector twice (same seed) and times whole training steps (forward, loss, backward,
AdamW) on the same batch of rendered street frames, alternating the variants round by round so both
see the same machine load. The build's training budget is fixed in time (<= 60 min on 2 cores), so
this ratio is how many more images the bfloat16 build sees. Needs the train extra (PyTorch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from models.pipeline.build import SPECS  # noqa: E402
from models.pipeline.data import render_detection_set  # noqa: E402
from models.pipeline.nets import Detector  # noqa: E402
from models.pipeline.objects import CLASSES  # noqa: E402
from models.pipeline.train import detector_loss  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="training steps per variant per round")
    args = parser.parse_args()
    torch.set_num_threads(2)
    spec = SPECS["street-issues"]
    data = render_detection_set(0, args.batch, spec.width, spec.height)
    images = data.images.astype(np.float32) / 255.0
    variants = {"float32": False, "bfloat16+channels_last": True}
    runs: dict[str, tuple] = {}
    for name, bf16 in variants.items():
        torch.manual_seed(0)
        layout = torch.channels_last if bf16 else torch.contiguous_format
        model = Detector(len(CLASSES), spec.width, spec.height).to(memory_format=layout).train()
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=layout)
        runs[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3), x, bf16)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for rnd in range(args.rounds + 1):  # round 0 warms up oneDNN's kernels and is not counted
        for name, (model, opt, x, bf16) in runs.items():
            t = time.perf_counter()
            for _ in range(args.steps):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    loss, _ = detector_loss(model, x, data.boxes)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if rnd:
                times[name].append((time.perf_counter() - t) / args.steps)
    base = statistics.median(times["float32"])
    print(f"detector {spec.width}x{spec.height}, batch {args.batch}, torch {torch.__version__}, 2 threads")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(
            f"  {name:24s} {med * 1000:7.0f} ms/step  {med / args.batch * 1000:6.1f} ms/image  "
            f"{base / med:4.2f}x float32"
        )


if __name__ == "__main__":
    main()
