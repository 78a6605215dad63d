"""The monitor's view: latest reading per sensor, alarms opening and clearing, JSON lines."""

from __future__ import annotations

import asyncio
import json

from rich.console import Console

from agent.events import ALARM, READING, Event, now_ms
from tools.board_cli.monitor_view import BoardView, event_line, link_line


def reading(sensor: str, **values: float) -> Event:
    return Event(READING, now_ms(), True, board="b1", sensor=sensor, values=values, units={"pm2_5": "ug/m3"})


def alarm(phase: str, tilt: float) -> Event:
    return Event(
        ALARM,
        now_ms(),
        True,
        phase=phase,
        label="cover_tilt",
        board="b1",
        sensor="adxl345",
        values={"tilt_deg": tilt},
        severity="critical",
    )


def shown(view: BoardView, link: dict | None = None) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(view.render(link))
    return console.export_text()


def test_latest_reading_per_sensor_and_alarm_lifecycle() -> None:
    view = BoardView()

    async def feed() -> None:
        await view.submit(reading("pms5003", pm2_5=21.0))
        await view.submit(reading("pms5003", pm2_5=35.5))
        await view.submit(reading("sht3x", temperature_c=18.25))
        await view.submit(alarm("start", 23.5))

    asyncio.run(feed())
    text = shown(view, {"b1": {"connected": True, "frames_good": 120, "frames_corrupt": 1, "rtt_ms": 4.2}})
    assert "pm2_5 35.5 ug/m3" in text and "pm2_5 21" not in text  # only the newest reading
    assert "temperature_c 18.25" in text
    assert "cover_tilt" in text and "OPEN" in text and "tilt_deg 23.5" in text
    link_row = next(line.split() for line in text.splitlines() if "120" in line)
    assert link_row[1:10:2] == ["b1", "yes", "120", "1", "4.2"], text
    view.add(alarm("end", 2.0))
    text = shown(view)
    assert "cleared" in text and "OPEN" not in text
    assert view.snapshot()["events"] == 4


def test_json_lines_are_the_event_wire_json() -> None:
    line = json.loads(event_line(reading("pms5003", pm2_5=21.0).stamped("pole-1", 7)))
    assert (
        line["event"]["sn"] == "pms5003"
        and line["event"]["val"] == {"pm2_5": 21.0}
        and line["event"]["s"] == 7
    )
    assert json.loads(link_line({"frames_ok": 3}))["link"] == {"frames_ok": 3}
