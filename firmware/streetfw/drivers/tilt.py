# Tilt of a manhole cover from an accelerometer at rest: the angle between gravity and the axis that
# points up when the cover lies flat (z). Shared by the ADXL345 and MPU-6050 drivers.
import math


def tilt_deg(x, y, z):
    """Angle in degrees between the measured acceleration (in g) and +z."""
    return math.degrees(math.atan2(math.sqrt(x * x + y * y), z))
