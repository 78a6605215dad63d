"""Benchmark helper: an integrator's subscriber in its own process, as it would be in the field.

``python bench/_consumer.py HOST PORT TOPIC EXPECTED`` prints one JSON line when it has seen
EXPECTED distinct sequence numbers (or stalls 30 s): first-arrival time and capture time per seq.
"""

from __future__ import annotations

import json
import sys
import time

import msgpack
import paho.mqtt.client as mqtt


def main(host: str, port: int, topic: str, expected: int) -> None:
    seen: dict[int, tuple[int, int]] = {}  # seq -> (arrival ms, captured ms)
    copies = 0
    last = time.monotonic()

    def on_connect(client: mqtt.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        client.subscribe(topic, qos=1)
        print("READY", flush=True)

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal copies, last
        raw = msgpack.unpackb(message.payload)
        copies += 1
        last = time.monotonic()
        seen.setdefault(raw["s"], (time.time_ns() // 1_000_000, raw["t"]))
        if len(seen) >= expected:
            client.disconnect()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, port)
    while client.loop(0.5) == mqtt.MQTT_ERR_SUCCESS:
        if time.monotonic() - last > 30 and seen:
            break
    print(json.dumps({"copies": copies, "seen": {s: v for s, v in seen.items()}}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
