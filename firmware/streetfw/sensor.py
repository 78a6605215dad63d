# The driver interface of the firmware SDK: what a sensor driver implements, and how a board config
# entry becomes a driver. MicroPython code (runs under CPython too).
#
# A driver is a class with a TYPE (the config's "type"), the PINS it is wired with, the UNITS of the
# values read() returns, and the SEVERITY of an alarm on each value. The main loop (app.py) calls
# read() every interval_s, compares the values with the thresholds of the config, raises and clears
# alarms, and sends readings: a driver never deals with the protocol, the schedule or thresholds.
#
#     from streetfw.sensor import Sensor, SensorError, register
#
#     @register
#     class FloodGauge(Sensor):
#         TYPE = "flood_gauge"
#         PINS = ("adc",)
#         UNITS = {"level_cm": "cm"}
#         SEVERITY = {"level_cm": "critical"}
#
#         def setup(self):
#             self.adc = self.hal.adc(self.pins["adc"])
#
#         def read(self):
#             return {"level_cm": self.adc.read_u16() / 65535 * 200 + self.offset("level_cm")}


class SensorError(Exception):
    """A read failed: no answer, bad checksum, implausible value. The message names what went wrong."""


# Types as comments, not annotations: the compilers of bytecode v5 and older (MicroPython 1.18 and
# before) reject variable annotations, and the bundle is built for those boards too.
class Sensor:
    TYPE = ""  # type: str
    PINS = ()  # type: tuple
    UNITS = {}  # type: dict
    SEVERITY = {}  # type: dict  # value key -> "info" | "warning" | "critical"; "warning" when absent
    DEFAULT_ADDRESS = None  # type: int | None  # I2C drivers: the address unless the config gives one

    def __init__(self, hal, name, pins, calibration=None, options=None):
        self.hal = hal
        self.name = name
        self.pins = pins
        self.calibration = calibration or {}
        self.options = options or {}
        for role in self.PINS:
            if role not in pins:
                raise ValueError("%s needs pin %r" % (self.TYPE, role))
        self.address = self.options.get("i2c_address") or self.DEFAULT_ADDRESS
        self.setup()

    def setup(self):
        """Open the buses and configure the device; raise SensorError if it does not answer."""

    def read(self):
        """The current values, {key: number}; raise SensorError when the device gives no valid data."""
        raise NotImplementedError

    def close(self):
        """Release what setup() took (the board calls it before a reboot or a config change)."""

    def offset(self, key, default=0.0):
        """A calibration value from the config (e.g. an offset a technician measured)."""
        return float(self.calibration.get(key, default))

    def i2c(self):
        return self.hal.i2c(self.pins["sda"], self.pins["scl"])


_REGISTRY = {}  # type: dict  # TYPE -> driver class
_PACKAGE = __name__[: __name__.rfind(".")]  # "streetfw" on a board, "firmware.streetfw" under CPython


def register(cls):
    """Class decorator: makes a driver available under its TYPE."""
    if not cls.TYPE:
        raise ValueError("a driver needs a TYPE")
    _REGISTRY[cls.TYPE] = cls
    return cls


def registered():
    return sorted(_REGISTRY)


def sensor_class(type_name):
    """The driver for a config type: a registered one, one of ours (streetfw/drivers/TYPE.py), or an
    integrator's module named TYPE on the board's path (/fw/<version>/lib/TYPE.py)."""
    if type_name in _REGISTRY:
        return _REGISTRY[type_name]
    if not isinstance(type_name, str) or not type_name.replace("_", "a").isalnum():
        raise ValueError("sensor type %r is not a driver name" % (type_name,))
    try:
        __import__(_PACKAGE + ".drivers." + type_name)
    except ImportError:
        try:
            __import__(type_name)
        except ImportError:
            pass
    if type_name not in _REGISTRY:
        raise ValueError("no driver for sensor type %r (ours: %s)" % (type_name, ", ".join(BUILTIN)))
    return _REGISTRY[type_name]


BUILTIN = ("pms5003", "sht3x", "adxl345", "mpu6050", "noise", "water_ultrasonic", "water_analog")


def create(hal, entry):
    """A driver from one sensors[] entry of /config.json."""
    cls = sensor_class(entry.get("type"))
    name = entry.get("id") or entry["type"]
    options = dict(entry.get("options") or {})  # driver settings, e.g. a Modbus address
    for key in entry:
        if key not in ("type", "id", "pins", "interval_s", "thresholds", "calibration", "options"):
            options[key] = entry[key]
    return cls(hal, name, entry.get("pins") or {}, entry.get("calibration"), options)
