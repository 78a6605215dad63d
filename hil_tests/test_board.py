"""The sensor board through the whole gateway: HELLO and readings with the board's clock set, an alarm
that arrives exactly once through line noise and a broker restart, the lamp commanded over MQTT, and
a cable pulled and an agent restarted without losing an alarm or breaking the sequence."""

from __future__ import annotations

import statistics
import time

from agent.events import ALARM, END, READING, START
from agent.trust.commands import command_payload
from agent.trust.keys import new_key
from hil_tests.bench import PREFIX, board_section, gateway_config

SENSORS = {"pms5003", "sht3x", "cover", "noise", "water"}


def start_agent(agents, bench_broker, tmp_path, device, board, name="agent", **sections):
    config = gateway_config(device, bench_broker, tmp_path / name, **sections)
    config["boards"] = [board_section(board)]
    (tmp_path / name).mkdir(exist_ok=True)
    config["outbox"] = {"path": str(tmp_path / "outbox.sqlite")}  # one outbox across restarts
    return agents(config, name)


def test_board_readings_arrive_time_stamped_by_the_board(
    bench_broker, listen, agents, board, report, tmp_path
) -> None:
    device = "hil-board"
    listener = listen(device)
    agent = start_agent(agents, bench_broker, tmp_path, device, board)
    try:
        listener.wait_for(
            lambda lst: {e.sensor for e in lst.events(READING)} >= SENSORS,
            60,
            f"readings from {sorted(SENSORS)}",
        )
        time.sleep(6)  # a few more rounds
    except AssertionError:
        raise AssertionError(f"agent log:\n{agent.tail()}") from None
    with listener._lock:
        arrivals = [a for a in listener.arrivals if a.event.kind == READING]
    delays = [a.at_ms - a.event.captured_ms for a in arrivals]
    assert all(e.board == board.board_id for e in (a.event for a in arrivals))
    # The board's clock was set by the gateway: its time stamps agree with this machine's within 2 s.
    assert all(-2000 < d < 2000 for d in delays), sorted(delays)[-5:]
    assert not listener.problems
    report("readings", len(arrivals))
    report("sample->MQTT median", statistics.median(delays), "ms")


def test_an_alarm_arrives_exactly_once_through_line_noise_and_a_broker_restart(
    bench_broker, listen, agents, board, report, tmp_path
) -> None:
    if bench_broker.restart is None:
        import pytest

        pytest.skip("--broker given: the suite cannot restart someone else's broker")
    device = "hil-alarm"
    listener = listen(device)
    agent = start_agent(agents, bench_broker, tmp_path, device, board)
    listener.wait_for(lambda lst: lst.events(READING), 60, "the first reading")
    bench_broker.stop()
    board.world(tilt_deg=35.0)  # the cover is lifted while the broker is down
    time.sleep(3)
    bench_broker.start()
    try:
        listener.wait_for(lambda lst: lst.events(ALARM, phase=START), 60, "the cover alarm")
        board.world(tilt_deg=0.8)
        listener.wait_for(lambda lst: lst.events(ALARM, phase=END), 60, "the cover alarm's end")
        time.sleep(3)  # a duplicate would show up now
    except AssertionError:
        raise AssertionError(f"agent log:\n{agent.tail()}") from None
    starts, ends = listener.events(ALARM, phase=START), listener.events(ALARM, phase=END)
    assert len(starts) == 1 and len(ends) == 1, (starts, ends)
    assert starts[0].label == "tilt_deg_high" and starts[0].severity == "critical"
    assert ends[0].ref == starts[0].event_id
    report("alarms", 1, note="start+end, once")


def test_the_lamp_follows_a_signed_command_over_mqtt(
    bench_broker, listen, agents, board, report, tmp_path
) -> None:
    device = "hil-lamp"
    private, public = new_key()
    listener = listen(device)
    start_agent(
        agents, bench_broker, tmp_path, device, board, uplink={"commands": {"trusted_keys": [public]}}
    )
    listener.wait_for(lambda lst: lst.events(READING), 60, "the first reading")
    sent = time.monotonic()
    listener.publish(
        f"{PREFIX}/{device}/cmd/board-lamp",
        command_payload(device, "board-lamp", {"board": board.board_id, "level": 0.25}, private),
    )
    listener.wait_for(lambda lst: any("board-lamp" in t for t, _ in lst.replies), 20, "the command's reply")
    took = (time.monotonic() - sent) * 1000
    reply = next(body for topic, body in listener.replies if "board-lamp" in topic)
    assert reply["ok"] is True, reply
    assert reply["result"]["result"]["level"] == 0.25
    duty = board.lamp_duty()
    if board.simulated:
        assert duty == int(0.25 * 65535 + 0.5)
    report("command->reply", took, "ms")


def test_a_pulled_cable_and_an_agent_restart_lose_no_alarm_and_keep_the_sequence(
    bench_broker, listen, agents, board, report, tmp_path
) -> None:
    device = "hil-replug"
    listener = listen(device)
    agent = start_agent(agents, bench_broker, tmp_path, device, board)
    listener.wait_for(lambda lst: lst.events(READING), 60, "the first reading")
    board.unplug()
    board.world(water_level_cm=35.0)  # water rises while the cable is out
    time.sleep(3)
    board.replug()
    listener.wait_for(lambda lst: lst.events(ALARM, phase=START), 60, "the water alarm after the replug")
    agent.stop()
    board.world(water_level_cm=2.0)  # ... and falls while the agent restarts: the board holds the end
    time.sleep(3)
    agent = start_agent(agents, bench_broker, tmp_path, device, board, name="agent2")
    try:
        listener.wait_for(lambda lst: lst.events(ALARM, phase=END), 60, "the water alarm's end")
        time.sleep(2)
    except AssertionError:
        held = board.sim.board.pending if board.simulated else "?"
        raise AssertionError(
            f"board holds {held}; events {listener.events(ALARM)}; agent log:\n{agent.tail()}"
        ) from None
    starts, ends = listener.events(ALARM, phase=START), listener.events(ALARM, phase=END)
    assert len(starts) == 1 and len(ends) == 1 and starts[0].label == "level_cm_high"
    assert ends[0].ref == starts[0].event_id, "the end names its start across the agent restart"
    assert not listener.problems, listener.problems
    seqs = [e.seq for e in listener.events() if e.kind != "health"]
    seqs_all = sorted({e.seq for e in listener.events()})
    assert seqs_all == list(range(seqs_all[0], seqs_all[0] + len(seqs_all))), "the sequence has gaps"
    assert len(seqs) >= 2
    report("events", len(seqs_all), note="no gaps")


def test_board_monitor_shows_the_link_statistics_the_agent_reports(
    bench_broker, agents, board, report, tmp_path
) -> None:
    """`edgectl board monitor --json`, as the guide runs it on the gateway, against the running agent."""
    import json
    import subprocess
    import sys

    from hil_tests.bench import ROOT

    device = "hil-monitor"
    agent = start_agent(agents, bench_broker, tmp_path, device, board, uplink={"telemetry_interval_s": 2})
    options = ["--config", str(agent.path), "--json", "--board", board.board_id, "--duration", "25"]
    monitor = subprocess.run(
        [sys.executable, "-m", "tools.edgectl", "board", "monitor", *options],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert monitor.returncode == 0, monitor.stderr
    lines = [json.loads(line) for line in monitor.stdout.splitlines()]
    links = [line["link"][board.board_id] for line in lines if board.board_id in line.get("link", {})]
    assert links, f"no link statistics in {len(lines)} lines; agent log:\n{agent.tail()}"
    last = links[-1]
    assert last["connected"] is True and last["frames_good"] > 0 and last["readings"] > 0, last
    assert isinstance(last["rtt_ms"], float) and last["rtt_ms"] > 0, last
    assert any("event" in line and line["event"].get("sn") for line in lines), "readings shown too"
    report("link rtt", last["rtt_ms"], "ms")
