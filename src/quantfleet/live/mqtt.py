"""Market events over MQTT: bars on ``quantfleet/bars/{frequency}/{symbol}`` drive an event deployment.

A bar's payload is JSON: ``{"ts": <UTC microseconds>, "open": ..., "high": ...,
"low": ..., "close": ..., "volume": ...}``. Bars of one timestamp arrive
one symbol at a time; :class:`BarBatcher` hands on a timestamp once every
subscribed symbol has a bar at it, or once a later bar shows it is over, so
``on_bar`` sees one batch per timestamp, as in a backtest. Messages use QoS 1
(at least once): a repeated bar is dropped by its timestamp.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from quantfleet.core.errors import InfrastructureError
from quantfleet.core.types import Frequency
from quantfleet.live.paper import Bar
from quantfleet.live.session import DeploymentSession

__all__ = ["BarBatcher", "BarFeed", "MqttUnavailable", "bar_topic", "publish_bars", "run_on_bars"]

log = logging.getLogger(__name__)

TOPIC_ROOT = "quantfleet/bars"


class MqttUnavailable(InfrastructureError):
    """The MQTT broker could not be reached."""


def bar_topic(frequency: Frequency | str, symbol: str) -> str:
    """Return the topic bars of ``symbol`` at ``frequency`` are published on."""
    return f"{TOPIC_ROOT}/{Frequency.parse(frequency).value}/{symbol}"


def _payload(bar: Bar) -> bytes:
    body = {
        "ts": bar.ts_us,
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
    }
    return json.dumps(body).encode()


def _bar(symbol: str, payload: bytes | bytearray) -> Bar:
    body = json.loads(payload)
    ts = datetime.fromtimestamp(int(body["ts"]) / 1e6, tz=UTC)
    return Bar(
        symbol,
        ts,
        float(body["open"]),
        float(body["high"]),
        float(body["low"]),
        float(body["close"]),
        float(body["volume"]),
    )


def _client(host: str, port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise MqttUnavailable(f"cannot reach the MQTT broker at {host}:{port}: {exc}; is Mosquitto running?") from exc
    return client


def publish_bars(host: str, port: int, frequency: Frequency | str, bars: Iterable[Mapping[str, Bar]]) -> int:
    """Publish bars (one mapping per timestamp) with QoS 1 and wait until the broker has each; return how many."""
    client = _client(host, port)
    client.loop_start()
    sent = 0
    try:
        for batch in bars:
            for symbol, bar in batch.items():
                info = client.publish(bar_topic(frequency, symbol), _payload(bar), qos=1)
                info.wait_for_publish(timeout=10)
                sent += 1
    finally:
        client.loop_stop()
        client.disconnect()
    return sent


class BarBatcher:
    """Group bars arriving one symbol at a time into one batch per timestamp (see the module docstring)."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = frozenset(symbols)
        self._pending: dict[int, dict[str, Bar]] = {}
        self._done = -1

    def add(self, bar: Bar) -> list[tuple[int, dict[str, Bar]]]:
        """Take one bar; return the batches it completes, oldest first."""
        ts = bar.ts_us
        if ts <= self._done or bar.symbol not in self.symbols:
            return []  # a repeat (QoS 1 redelivers), a late bar, or a symbol not traded
        self._pending.setdefault(ts, {})[bar.symbol] = bar
        ready = [t for t in sorted(self._pending) if t < ts or set(self._pending[t]) == self.symbols]
        out = []
        for t in ready:
            if t > self._done:
                out.append((t, self._pending.pop(t)))
                self._done = t
        for t in [t for t in self._pending if t <= self._done]:
            del self._pending[t]
        return out


class BarFeed:
    """Subscribe to the bars of ``symbols`` at ``frequency``; :meth:`get` returns them as they arrive."""

    def __init__(self, host: str, port: int, frequency: Frequency | str, symbols: Sequence[str]) -> None:
        self.frequency = Frequency.parse(frequency)
        self.symbols = tuple(symbols)
        self._queue: queue.Queue[Bar] = queue.Queue()
        self._ready = threading.Event()
        self._client = _client(host, port)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.loop_start()
        if not self._ready.wait(10):
            self.close()
            raise MqttUnavailable(f"the MQTT broker at {host}:{port} did not confirm the subscription in 10 s")

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        # (Re)subscribe on every connect: after a reconnect the broker has forgotten a clean session.
        client.subscribe([(bar_topic(self.frequency, s), 1) for s in self.symbols])

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, codes: object, props: object) -> None:
        self._ready.set()  # the broker acknowledged: bars published from now on reach this feed

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        symbol = message.topic.rsplit("/", 1)[-1]
        try:
            self._queue.put(_bar(symbol, message.payload))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dropped a malformed bar on %s: %s", message.topic, exc)

    def get(self, timeout: float) -> Bar | None:
        """Return the next bar, None if none arrived within ``timeout`` seconds."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Disconnect."""
        self._client.loop_stop()
        self._client.disconnect()


def run_on_bars(session: DeploymentSession, feed: BarFeed, stop: threading.Event, *, beat_every: float = 5.0) -> int:
    """Call the session's on_bar for each timestamp the feed completes until ``stop``; return how many ran.

    Records a heartbeat for the deployment every ``beat_every`` seconds, so a
    supervisor can tell a hung process from a quiet market.
    """
    batcher = BarBatcher(session.deployment.spec.universe)
    seen = session.service.last_bar_at(session.deployment.id)  # a restarted process: bars handled before
    done_us = (seen - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) if seen else -1
    handled = 0
    next_beat = 0.0
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_beat:
            session.service.beat(session.deployment.id, now=session.clock.now())
            next_beat = now + beat_every
        bar = feed.get(timeout=0.2)
        if bar is None:
            continue
        for ts, bars in batcher.add(bar):
            last = session.history.last_ts
            if ts <= done_us or (last is not None and ts <= last):
                continue  # already handled (before a restart, or a redelivery)
            session.on_bars(ts, bars)
            handled += 1
    return handled
