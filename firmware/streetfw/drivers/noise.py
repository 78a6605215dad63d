# Noise level from a microphone module on an ADC pin.
#
# A burst of samples is taken into a preallocated array, the DC bias of the microphone amplifier is
# removed (the mean), and the RMS expressed in dB relative to one ADC count (full scale is 65535):
# dB = 20·log10(rms) + db_offset. The offset maps that to sound pressure level: a technician plays a
# reference tone (e.g. 94 dB from a sound calibrator) or compares with a class-2 sound level meter
# and sets calibration.db_offset to the difference. This is an unweighted level, not dB(A).
import math
from array import array

from ..sensor import Sensor, register

SAMPLES = 256
FLOOR_DB = 0.0  # the level reported for perfect silence (rms 0), instead of minus infinity


def level_db(samples, offset=0.0):
    n = len(samples)
    mean = 0
    for s in samples:
        mean += s
    mean /= n
    acc = 0.0
    for s in samples:
        d = s - mean
        acc += d * d
    rms = math.sqrt(acc / n)
    if rms <= 0:
        return FLOOR_DB + offset
    return 20 * math.log10(rms) + offset


@register
class Noise(Sensor):
    TYPE = "noise"
    PINS = ("adc",)
    UNITS = {"db": "dB"}
    SEVERITY = {"db": "warning"}

    def setup(self):
        self.adc = self.hal.adc(self.pins["adc"])
        self.samples = array("H", bytes(2 * SAMPLES))

    def read(self):
        read = self.adc.read_u16
        buf = self.samples
        for i in range(SAMPLES):
            buf[i] = read()
        return {"db": level_db(buf, self.offset("db_offset"))}
