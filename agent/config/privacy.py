"""What leaves the device: kinds, fields and classes withheld before an event is stored.

Minimization happens where every event passes, the outbox, before the event takes a sequence
number: what is withheld is never on the gateway's disk, never on the wire and leaves no gap.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ..events import KINDS, withholdable_keys
from .base import Section


class PrivacyConfig(Section):
    send_kinds: list[str] = Field(
        default_factory=lambda: list(KINDS),
        description="kinds of event that leave the device; the others are never stored or sent",
    )
    drop_fields: list[str] = Field(
        default_factory=list,
        description="wire keys removed from every event before it is stored: img (snapshots, with "
        "blr), tr (track ids), z, dn, u; header, required and chain keys cannot be dropped",
    )
    drop_labels: list[str] = Field(
        default_factory=list,
        description="issue classes never sent, e.g. person (where positions of people must not leave)",
    )

    @field_validator("send_kinds")
    @classmethod
    def _kinds(cls, kinds: list[str]) -> list[str]:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; kinds are {', '.join(KINDS)}")
        return kinds

    @field_validator("drop_fields")
    @classmethod
    def _fields(cls, keys: list[str]) -> list[str]:
        allowed = withholdable_keys()
        bad = sorted(set(keys) - allowed)
        if bad:
            raise ValueError(
                f"cannot drop {bad}: only optional keys can be ({', '.join(sorted(allowed))}); header, "
                "required and chain keys make the event"
            )
        return keys
