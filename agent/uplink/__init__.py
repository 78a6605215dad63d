"""The uplink: the durable outbox every event waits in, the MQTT publisher that empties it, and the
command gate (see docs/uplink.md)."""
