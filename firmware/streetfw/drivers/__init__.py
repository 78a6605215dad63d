# Our sensor drivers, one module per config type; each registers itself with streetfw.sensor.
