# The pole's lamp, dimmed by PWM into its driver's dimming input: level 0 (off) to 1 (full).
class Lamp:
    def __init__(self, hal, pin, frequency_hz=1000, level=1.0):
        self.pwm = hal.pwm(pin, frequency_hz)
        self.level = 0.0
        self.set(level)

    def set(self, level):
        if not 0 <= level <= 1:
            raise ValueError("lamp level %r is outside 0..1" % (level,))
        self.pwm.duty_u16(int(level * 65535 + 0.5))
        self.level = level
