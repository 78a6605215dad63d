"""Who may update this gateway over MQTT (docs/fleet.md): the keys whose signed packages it installs."""

from __future__ import annotations

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
