"""Board profiles: a setup is checked against its board family's pins before it reaches a board, the
profile travels in the board's config, and the simulated board refuses what the real one would."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.sim.hal import SimHAL, World
from firmware.streetfw import sensor
from tools.board_cli.board_setup import SetupError, load_setup
from tools.board_cli.profiles import families

PICO = """board_id = "pico-1"
board = "rp2040"
[[sensors]]
type = "pms5003"
pins = { tx = 4, rx = 5 }
[[sensors]]
type = "sht3x"
pins = { sda = 0, scl = 1 }
[[sensors]]
type = "noise"
pins = { adc = 26 }
[lamp]
pin = 15
"""


def setup_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "setup.toml"
    path.write_text(text)
    return path


def test_we_ship_profiles_for_esp32_and_rp2040() -> None:
    assert {"esp32", "rp2040"} <= set(families())


def test_a_pico_setup_fits_and_carries_its_profile(tmp_path: Path) -> None:
    doc = load_setup(setup_file(tmp_path, PICO)).document()
    assert doc["profile"]["family"] == "rp2040" and doc["profile"]["adc_pins"] == [26, 27, 28]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # ESP32 pins on a Pico: GPIO 34 is no ADC there, and 17/16 is no UART pin pair.
        (("adc = 26", "adc = 34"), "noise.adc = 34: rp2040 has GPIO 0-28"),
        (("adc = 26", "adc = 22"), "noise.adc = 22: no ADC on rp2040"),
        (
            ("tx = 4, rx = 5", "tx = 5, rx = 4"),
            "uart pins 5/4: pins 5 and 4 cannot form a UART bus on rp2040",
        ),
        (("sda = 0, scl = 1", "sda = 0, scl = 3"), "i2c pins 0/3"),
        (("pin = 15", "pin = 25"), "lamp.pwm = 25: reserved on rp2040"),
        (('board = "rp2040"', 'board = "esp8266"'), "no board profile 'esp8266'"),
    ],
)
def test_pins_the_family_lacks_are_refused_by_name(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    with pytest.raises(SetupError, match=message.replace("(", r"\(")):
        load_setup(setup_file(tmp_path, PICO.replace(*change)))


def test_an_input_only_esp32_pin_cannot_trigger_the_ultrasonic_sensor(tmp_path: Path) -> None:
    text = 'board_id = "b"\n[[sensors]]\ntype = "water_ultrasonic"\npins = { trig = 35, echo = 18 }\n'
    with pytest.raises(SetupError, match="trig = 35: input-only on esp32"):
        load_setup(setup_file(tmp_path, text))
    assert load_setup(setup_file(tmp_path, text.replace("trig = 35, echo = 18", "trig = 5, echo = 35")))


def test_the_simulated_board_refuses_what_the_profile_refuses(tmp_path: Path) -> None:
    doc = load_setup(setup_file(tmp_path, PICO)).document()
    hal = SimHAL(World(), doc)
    assert sensor.create(hal, doc["sensors"][2]).read()["db"] > 0  # GP26 is an ADC on a Pico
    with pytest.raises(ValueError, match="pin 34 has no ADC on rp2040"):
        hal.adc(34)
    with pytest.raises(ValueError, match="cannot form a UART bus on rp2040"):
        hal.uart(17, 16, 9600)
