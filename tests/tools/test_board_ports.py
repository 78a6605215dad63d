"""`edgectl board list` and opening ports: USB ids, MicroPython marks, and one-line errors."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator

import pytest
import serial
from serial.tools.list_ports_common import ListPortInfo

from tools.board_cli.ports import classify, open_port, port_error
from tools.edgectl import main as edgectl
from tools.errors import NO_PORT, EdgectlError


def usb_port(device: str, vid: int, pid: int) -> ListPortInfo:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid = vid, pid
    info.apply_usb_info()
    return info


@pytest.mark.parametrize(
    ("vid", "pid", "mark", "kind"),
    [
        (0x2E8A, 0x0005, "yes", "RP2040"),
        (0x303A, 0x4001, "yes", "ESP32-S2/S3"),
        (0x303A, 0x1001, "maybe", "Espressif"),
        (0x10C4, 0xEA60, "maybe", "CP210x"),
        (0x1A86, 0x7523, "maybe", "CH340"),
        (0x0403, 0x6001, "maybe", "FTDI"),
        (0x046D, 0xC52B, "", ""),
    ],
)
def test_usb_ids_are_recognized(vid: int, pid: int, mark: str, kind: str) -> None:
    port = classify(usb_port("/dev/ttyUSB0", vid, pid))
    assert port.micropython == mark and kind in port.kind
    assert port.usb_id == f"{vid:04x}:{pid:04x}"


@pytest.fixture
def pty() -> Iterator[str]:
    controller, peripheral = os.openpty()
    yield os.ttyname(peripheral)
    os.close(controller)
    os.close(peripheral)


def test_list_shows_an_extra_port_as_json(pty: str, capsys) -> None:
    assert edgectl(["board", "list", "--port", pty, "--json"]) == 0
    ports = json.loads(capsys.readouterr().out)
    assert pty in [p["device"] for p in ports]


def test_missing_port_is_one_clear_line(capsys) -> None:
    assert edgectl(["board", "list", "--port", "/dev/ttyUSB-missing"]) == NO_PORT
    err = capsys.readouterr().err
    assert "no such serial port" in err and "Traceback" not in err
    with pytest.raises(EdgectlError, match="no such serial port") as caught:
        open_port("/dev/ttyUSB-missing")
    assert caught.value.exit_code == NO_PORT


def test_a_port_held_by_another_program_is_named_busy(pty: str) -> None:
    first = open_port(pty)
    try:
        with pytest.raises(EdgectlError, match="in use by another program"):
            open_port(pty)
    finally:
        first.close()


def test_permission_denied_names_the_group_fix() -> None:
    exc = serial.SerialException(
        errno.EACCES, "could not open port /dev/ttyUSB0: [Errno 13] Permission denied"
    )
    err = port_error("/dev/ttyUSB0", exc)
    assert err.exit_code == NO_PORT and "dialout" in err.message


def test_probe_says_who_answers(tmp_path, pty: str, capsys) -> None:
    from firmware.sim.stock_board import StockBoard

    with StockBoard(tmp_path / "flash") as board:
        (board.flash / "fw").mkdir()
        (board.flash / "fw" / "current").write_text("1.4.0\n")
        (board.flash / "config.json").write_text('{"board_id": "pole-0042-b1"}')
        assert edgectl(["board", "list", "--port", board.port, "--port", pty, "--probe", "--json"]) == 0
    found = {p["device"]: p for p in json.loads(capsys.readouterr().out)}
    answer = found[board.port]["answer"]
    assert answer["answered"] and answer["micropython"] == "1.27.0"
    assert answer["firmware"] == "1.4.0" and answer["board_id"] == "pole-0042-b1"
    assert found[pty]["answer"] == {
        "answered": False,
        "micropython": None,
        "firmware": None,
        "board_id": None,
        "detail": "no MicroPython REPL",
        "hello": False,
    }


def test_probe_names_a_board_running_our_firmware_from_its_hello(capsys) -> None:
    from firmware.sim.board import SimulatedBoard

    with SimulatedBoard({"board_id": "pole-0007-b2", "sensors": []}) as board:
        assert edgectl(["board", "list", "--port", board.port, "--probe", "--json"]) == 0
        assert board.boots == 1, "asked by HELLO: the board was not interrupted"
        port = board.port
    answer = {p["device"]: p for p in json.loads(capsys.readouterr().out)}[port]["answer"]
    assert answer["hello"] is True and answer["board_id"] == "pole-0007-b2" and answer["firmware"] == "1.0.0"


def test_without_port_edgectl_takes_the_only_board_or_says_what_to_do(capsys) -> None:
    from tools.board_cli.ports import list_serial_ports, the_only_board

    boards = [p.device for p in list_serial_ports() if p.micropython]
    if len(boards) == 1:  # a developer's machine with one board plugged in
        assert the_only_board() == boards[0]
        return
    assert edgectl(["board", "provision", "--show"]) == NO_PORT
    err = capsys.readouterr().err
    assert ("no board found on USB" in err) if not boards else ("choose one with --port" in err)


def test_verbose_adds_the_traceback(capsys) -> None:
    assert edgectl(["--verbose", "board", "list", "--port", "/dev/ttyUSB-missing"]) == NO_PORT
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.rstrip().endswith(
        "no such serial port; `edgectl board list` shows the ports"
    )


def test_board_list_shows_the_simulated_boards_while_they_run(tmp_path, capsys) -> None:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    port = tmp_path / "ttyPRACTICE"
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.edgectl",
            "board",
            "sim",
            "--stock",
            "--flash",
            str(tmp_path / "f"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert sim.stdout is not None and "simulated stock MicroPython board" in sim.stdout.readline()
        assert edgectl(["board", "list", "--json"]) == 0
        listed = {p["device"]: p for p in json.loads(capsys.readouterr().out)}
        assert listed[str(port)]["micropython"] == "sim"
        assert listed[str(port)]["kind"] == "simulated board (stock MicroPython)"
    finally:
        sim.send_signal(signal.SIGINT)
        assert sim.wait(10) == 0
    assert edgectl(["board", "list", "--json"]) == 0
    assert str(port) not in {p["device"] for p in json.loads(capsys.readouterr().out)}
