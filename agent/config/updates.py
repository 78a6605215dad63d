"""Who may update this gateway over MQTT (docs/fleet.md): the keys whose signed packages it installs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from .base import Section


class UpdatesConfig(Section):
    model_signers: list[str] = Field(
        default_factory=list,
        description="public keys (base64, as `edgectl keys new` prints) whose signed model packages may be "
        "installed over MQTT (model-install); none: no model updates",
    )
    firmware_signers: list[str] = Field(
        default_factory=list,
        description="public keys whose signed firmware bundles the gateway may install on its boards "
        "(board-firmware-install); none: no board updates over MQTT",
    )
    probation_s: float = Field(
        default=300.0,
        ge=0,
        description="after a model update, a camera that crashes within this many seconds goes back to "
        "its previous model by itself (and says so with a model_rollback alarm)",
    )
    probation_fps_ratio: float = Field(
        default=0.5,
        ge=0,
        lt=1,
        description="within probation_s, a camera that processes fewer frames per second than this "
        "share of what its previous model did goes back to it (0: no comparison); only while it drops "
        "frames its source delivered, so a slow stream is not blamed on the model",
    )
    probation_fps_floor: float = Field(
        default=0.0,
        ge=0,
        description="within probation_s, a camera on a new model below this many frames per second "
        "(dropping frames its source delivered) goes back to the previous model; 0: no floor",
    )
    probation_fps_window_s: float = Field(
        default=30.0,
        gt=0,
        description="the frame rate is counted over this sliding window, and must stay low for one "
        "more window before a rollback: a short stall of a busy machine rolls nothing back",
    )
    fetch_ca_file: Path | None = Field(
        default=None,
        description="CA certificates (PEM) that the HTTPS servers of packages fetched by URL "
        "(model-install, board-firmware-install with url) may chain to, besides the system's",
    )
