"""What the gateway says about its own uplink must be true: health, warnings, strict switches."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from uplink_support import running_uplink

from agent.config import ConfigError, parse_config
from agent.uplink.connect import client_for
from tools.broker import Broker


def test_health_stops_reporting_an_old_error_once_connected(own_mosquitto: Broker, tmp_path: Path) -> None:
    own_mosquitto.stop()

    async def main() -> tuple[object, object]:
        cfg = parse_config(
            {
                "device": {"id": "pole-diag"},
                "uplink": {"url": own_mosquitto.url, "reconnect_max_s": 0.5},
                "outbox": {"path": str(tmp_path / "o.sqlite")},
            }
        )
        async with running_uplink(cfg, wait_connected=False) as ctx:
            stats = ctx.uplink.publisher.stats
            while stats.last_error is None:
                await asyncio.sleep(0.05)
            before = stats.last_error
            own_mosquitto.start()
            while not stats.connected:
                await asyncio.sleep(0.05)
            return before, ctx.health.snapshot()["uplink"]["last_error"]

    before, after = asyncio.run(asyncio.wait_for(main(), 30))
    assert before is not None and "refused" in str(before).lower()
    assert after is None


@pytest.mark.parametrize("value", ["off", "false", 0, 1, "yes"])
def test_a_switch_must_be_true_or_false(value) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {"device": {"id": "p1"}, "uplink": {"url": "mqtts://b.example:8883", "tls_verify": value}}
        )
    assert "uplink.tls_verify" in str(caught.value) and "true or false" in str(caught.value)


def test_tls_verification_off_is_warned_about(caplog) -> None:
    cfg = parse_config(
        {"device": {"id": "p1"}, "uplink": {"url": "mqtts://b.example:8883", "tls_verify": False}}
    )

    async def make() -> None:
        client_for(cfg.uplink, "edge-p1")  # aiomqtt clients are made inside a running loop

    with caplog.at_level(logging.WARNING, logger="agent.uplink.connect"):
        asyncio.run(make())
    assert any("tls_verify is off" in r.getMessage() for r in caplog.records)


def test_after_a_connection_that_lasted_the_reconnect_backoff_starts_small(
    own_mosquitto: Broker, tmp_path: Path
) -> None:
    async def main() -> float:
        cfg = parse_config(
            {
                "device": {"id": "pole-flap"},
                "uplink": {"url": own_mosquitto.url, "reconnect_min_s": 0.5, "reconnect_max_s": 16},
                "outbox": {"path": str(tmp_path / "o.sqlite")},
            }
        )
        async with running_uplink(cfg, wait_connected=False) as ctx:
            stats = ctx.uplink.publisher.stats
            # a flapping broker first: the backoff grows to 8-16 s
            own_mosquitto.stop()
            while stats.reconnects < 4:
                await asyncio.sleep(0.1)
            own_mosquitto.start()
            while not stats.connected:
                await asyncio.sleep(0.1)
            await asyncio.sleep(11)  # a connection that lasted
            own_mosquitto.stop()
            while stats.connected:
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)  # a 2 s outage
            own_mosquitto.start()
            back = time.monotonic()
            while not stats.connected:
                await asyncio.sleep(0.05)
            return time.monotonic() - back

    took = asyncio.run(asyncio.wait_for(main(), 120))
    assert took < 4.0, f"{took:.1f} s to reconnect after a 2 s outage: the backoff was not reset"
