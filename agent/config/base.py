"""Shared base for config sections: unknown keys are errors, so a typo is caught at load."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic would take "off", "no" or 0 for false: in a config that silently switches off
        # e.g. TLS verification. A switch is true or false, nothing else.
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and field.annotation in (bool, "bool") and not isinstance(value, bool):
            raise ValueError(f"must be true or false (without quotes), not {value!r}")
        return value
