# Water level under the street from an ultrasonic distance sensor (HC-SR04/JSN-SR04T class) looking
# down from the manhole: a 10 µs trigger pulse, then the echo pin is high for the sound's round trip.
# At ~343 m/s, 58 µs of echo is one centimetre of distance. level = mount_cm - distance, where
# mount_cm (calibration) is the distance from the sensor to the dry bottom.
from ..sensor import Sensor, SensorError, register

US_PER_CM = 58.0
TIMEOUT_US = 30000  # about 5 m: beyond the sensor's range


def level_cm(echo_us, mount_cm):
    distance = echo_us / US_PER_CM
    return mount_cm - distance, distance


@register
class WaterUltrasonic(Sensor):
    TYPE = "water_ultrasonic"
    PINS = ("trig", "echo")
    UNITS = {"level_cm": "cm", "distance_cm": "cm"}
    SEVERITY = {"level_cm": "critical"}

    def setup(self):
        self.trig = self.hal.pin_out(self.pins["trig"])
        self.echo = self.hal.pin_in(self.pins["echo"])
        self.trig.value(0)

    def read(self):
        self.trig.value(1)
        self.hal.sleep_us(10)
        self.trig.value(0)
        us = self.hal.time_pulse_us(self.echo, 1, TIMEOUT_US)
        if us < 0:
            raise SensorError(
                "ultrasonic: no echo (%s); check wiring and that nothing blocks the sensor"
                % ("timeout" if us == -2 else "echo already high")
            )
        level, distance = level_cm(us, self.offset("mount_cm", 100.0))
        return {"level_cm": level, "distance_cm": distance}
