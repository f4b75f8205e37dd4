"""Live and paper trading: deployments of the backtest's strategy file, run against a broker.

A service layer: it may import dispatch, jobs, store, engine, strategy, data
and core; nothing below it imports it (import-linter checks both).
"""

from quantfleet.live.broker import Account, Broker, BrokerOrder, BrokerUnavailable, OrderRequest, client_order_id
from quantfleet.live.deployments import DeploymentNotFound, DeploymentService, IllegalDeploymentChange
from quantfleet.live.models import (
    BarsTrigger,
    CronTrigger,
    Deployment,
    DeploymentId,
    DeploymentSpec,
    DeploymentStatus,
    RiskLimits,
    Run,
)
from quantfleet.live.paper import Bar, PaperBroker

__all__ = [
    "Account",
    "Bar",
    "BarsTrigger",
    "Broker",
    "BrokerOrder",
    "BrokerUnavailable",
    "CronTrigger",
    "Deployment",
    "DeploymentId",
    "DeploymentNotFound",
    "DeploymentService",
    "DeploymentSpec",
    "DeploymentStatus",
    "IllegalDeploymentChange",
    "OrderRequest",
    "PaperBroker",
    "RiskLimits",
    "Run",
    "client_order_id",
]
