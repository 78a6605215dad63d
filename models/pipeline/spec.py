"""What a model build makes (name, task, version, input size: the manifest's part) and the training
it runs (``build.py``'s rendered-data recipe; ``crowd_real.py`` trains by a plan of its own)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    name: str
    task: str  # "detect" or "density"
    version: str
    width: int
    height: int
    train_images: int
    val_images: int
    heldout_images: int
    steps: int
    batch: int
    lr: float
    time_budget_s: float
    golden_seed: int
    ema_decay: float = 0.0  # > 0: ship the moving average of the weights (detector)
    bf16: bool = False  # train the detector under bfloat16 autocast (see TrainConfig)
