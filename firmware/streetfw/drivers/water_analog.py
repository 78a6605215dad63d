# Water level from an analog sensor (a submersible pressure transmitter through a divider, or a
# resistive gauge) on an ADC pin: linear from zero_cm at 0 to zero_cm + span_cm at full scale.
from ..sensor import Sensor, register


@register
class WaterAnalog(Sensor):
    TYPE = "water_analog"
    PINS = ("adc",)
    UNITS = {"level_cm": "cm"}
    SEVERITY = {"level_cm": "critical"}

    def setup(self):
        self.adc = self.hal.adc(self.pins["adc"])

    def read(self):
        raw = 0
        for _ in range(8):  # a short average against ripple
            raw += self.adc.read_u16()
        level = raw / 8 / 65535 * self.offset("span_cm", 100.0) + self.offset("zero_cm")
        return {"level_cm": level}
