"""Open the broker a deployment names: its paper account, or Alpaca with credentials from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from quantfleet.core.errors import ConfigError
from quantfleet.engine.config import EngineConfig
from quantfleet.live.broker import Broker
from quantfleet.live.models import Deployment
from quantfleet.live.paper import PaperBroker
from quantfleet.store import Database

__all__ = ["open_broker"]


def open_broker(deployment: Deployment, db: Database, *, now: datetime, env: Mapping[str, str] | None = None) -> Broker:
    """Return the deployment's broker: a paper account (created on first use) or an Alpaca account."""
    spec = deployment.spec
    if spec.broker == "paper":
        return PaperBroker.open(db, deployment.account, now=now, config=EngineConfig.model_validate(spec.engine))
    if spec.broker == "alpaca":
        from quantfleet.live.alpaca import AlpacaBroker

        alpaca: Broker = AlpacaBroker.from_env(env=env)
        return alpaca
    raise ConfigError(f"unknown broker {spec.broker!r}; use paper or alpaca")
