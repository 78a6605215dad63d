"""Write a model folder's ``manifest.json`` and check it with the agent's own manifest schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from agent.vision.manifest import MANIFEST_NAME, load_manifest, sha256_file, verify_model_file

if TYPE_CHECKING:
    from models.pipeline.spec import Spec


def write_manifest(
    folder: Path,
    spec: Spec,
    *,
    file: str,
    other: list[str],
    classes: list[str],
    thresholds: dict,
    golden: dict,
) -> None:
    files = {name: sha256_file(folder / name) for name in sorted({file, *other, golden["image"]})}
    data = {
        "id": spec.name,
        "version": spec.version,
        "task": spec.task,
        "adapter": "yolov8" if spec.task == "detect" else "density",
        "file": file,
        "sha256": files[file],
        "input": {
            "width": spec.width,
            "height": spec.height,
            "layout": "NCHW",
            "color": "RGB",
            "dtype": "float32",
            "scale": 1.0 / 255.0,
            "mean": [0.0, 0.0, 0.0],
            "std": [1.0, 1.0, 1.0],
            "pad_value": 114,
            # models/pipeline/letterbox.py shrinks with INTER_AREA when training and measuring
            "resize": "area",
        },
        "classes": classes,
        "thresholds": thresholds,
        "golden": golden,
        "files": files,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    manifest = load_manifest(folder)  # refuse to leave behind a manifest the agent would reject
    verify_model_file(folder, manifest)
