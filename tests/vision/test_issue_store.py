"""Issues that survive restarts: an open static issue is the same issue after the agent restarts."""

from __future__ import annotations

from pathlib import Path

from test_rules import Script

from agent.events import END, START, UPDATE
from agent.vision.issue_store import IssueStore

POTHOLE = ("pothole", (0.40, 0.70, 0.55, 0.80), 0.85)
ELSEWHERE = ("pothole", (0.05, 0.10, 0.15, 0.20), 0.85)


def _with_store(path: Path) -> Script:
    """A camera's rules as the agent builds them after a (re)start: saved issues restored."""
    s = Script(fps=1.0)
    issues = s.rules.detectors[0].issues
    issues.store = IssueStore(path)
    issues.store.restore(issues)
    return s


def test_an_open_pothole_is_the_same_issue_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cam-1.street-issues.json"
    before = _with_store(path)
    before.run(120, [POTHOLE])
    (start,) = before.issues(START)
    assert path.exists()

    after = _with_store(path)  # the agent restarted; the pothole is still there
    after.run(60, [POTHOLE])
    assert after.issues(START) == [], "no second start for the same pothole"
    after.run(3 * 3600, [])  # filled: it ends, under its first start's id
    ends = after.issues(END)
    assert len(ends) == 1 and ends[0].ref == start.event_id
    assert all(e.ref == start.event_id for e in after.issues(UPDATE))

    again = _with_store(path)  # ended issues are not restored
    again.run(10, [])
    assert again.issues() == []


def test_a_restored_issue_not_seen_again_ends_and_a_new_place_is_a_new_issue(tmp_path: Path) -> None:
    path = tmp_path / "cam-1.street-issues.json"
    before = _with_store(path)
    before.run(120, [POTHOLE])
    (start,) = before.issues(START)
    after = _with_store(path)
    after.run(3 * 3600, [ELSEWHERE])
    (new_start,) = after.issues(START)
    assert new_start.event_id != start.event_id and new_start.box[0] < 2000
    old_end = [e for e in after.issues(END) if e.ref == start.event_id]
    assert len(old_end) == 1, "the pothole gone while the agent was down ends under its old id"


def test_an_unreadable_store_costs_a_warning_not_the_camera(tmp_path: Path, caplog) -> None:
    path = tmp_path / "cam-1.street-issues.json"
    path.write_text("{not json")
    s = _with_store(path)
    s.run(120, [POTHOLE])
    assert len(s.issues(START)) == 1
    assert "not restored" in caplog.text
