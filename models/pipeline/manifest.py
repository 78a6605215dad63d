"""Write a model folder's ``manifest.json`` and check it with the agent's own manifest schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from agent.vision.manifest import MANIFEST_NAME, load_manifest, sha256_file, verify_model_file
from models.pipeline.letterbox import input_spec

if TYPE_CHECKING:
    from agent.vision.manifest import InputSpec
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
    input: InputSpec | None = None,
) -> None:
    """``input`` overrides the spec ``letterbox()`` trains with (models on NanoDet's backbone take its own)."""
    files = {name: sha256_file(folder / name) for name in sorted({file, *other, golden["image"]})}
    data = {
        "id": spec.name,
        "version": spec.version,
        "task": spec.task,
        "adapter": "yolov8" if spec.task == "detect" else "density",
        "file": file,
        "sha256": files[file],
        # the very spec letterbox() trains and measures with; fit and stride are the agent's defaults
        "input": (input or input_spec(spec.width, spec.height)).model_dump(
            mode="json", exclude={"fit", "stride"}
        ),
        "classes": classes,
        "thresholds": thresholds,
        "golden": golden,
        "files": files,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    manifest = load_manifest(folder)  # refuse to leave behind a manifest the agent would reject
    verify_model_file(folder, manifest)
