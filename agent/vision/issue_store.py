"""Open static issues kept across restarts: a pothole open before the agent restarts is the same
issue afterwards (same ``start`` id), not a second start.

One small JSON file per camera and detector, rewritten atomically whenever an issue of a static
class starts, moves or ends. After a restart the saved issues are open again and wait
``end_after_s`` to be seen at their place; seen, they go on under their old id; not seen, they end.
Moving objects (stalls, parked cars) are not kept: after a restart they are new sightings.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .issues import Issue, IssueRules
from .lifecycle import Occurrence

log = logging.getLogger(__name__)


class IssueStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: str | None = None

    def restore(self, rules: IssueRules) -> int:
        """Put the saved open issues back into ``rules``; how many."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as exc:
            log.warning("open issues in %s not restored: %s", self.path, exc)
            return 0
        restored = 0
        for item in saved.get("open", []):
            rule = rules.rules.get(item.get("label"))
            if rule is None or not rule.static:
                continue  # the config no longer makes this an issue, or not a static one
            try:
                box = np.asarray(item["box"], np.float32)
                issue = Issue(
                    label=item["label"], zone=item["zone"], rule=rule, box=box,
                    confidence=float(item["confidence"]), track=-1,
                    life=Occurrence(start_id=bytes.fromhex(item["start_id"])), sent_box=box.copy(),
                    sent_confidence=float(item["confidence"]),
                )  # fmt: skip
            except (KeyError, ValueError, TypeError) as exc:
                log.warning("an open issue in %s is unreadable, skipped: %s", self.path, exc)
                continue
            rules.open.append(issue)
            rules.restored.append(issue)
            restored += 1
        if restored:
            log.info("%d open issues restored from %s", restored, self.path)
        return restored

    def save(self, rules: IssueRules) -> None:
        """Write the open static issues if they changed since the last write."""
        items: list[dict[str, Any]] = [
            {
                "label": i.label,
                "zone": i.zone,
                "box": [round(float(v), 5) for v in i.box],
                "confidence": round(float(i.confidence), 4),
                "start_id": i.start_id.hex(),
            }
            for i in rules.open
            if i.rule.static
        ]
        text = json.dumps({"open": items}, separators=(",", ":"))
        if text == self._written:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
            self._written = text
        except OSError as exc:  # losing this costs a second start after a restart, never an event
            log.warning("open issues not saved to %s: %s", self.path, exc)
