"""The broker port and its values, kept in :mod:`quantfleet.engine.live.orders` (the sandboxed child uses them too).

Re-exported here, where the live service's code and its users have always imported them from.
"""

from quantfleet.engine.live.orders import (
    Account,
    Broker,
    BrokerOrder,
    BrokerUnavailable,
    OrderRequest,
    UnknownOrder,
    client_order_id,
)

__all__ = [
    "Account",
    "Broker",
    "BrokerOrder",
    "BrokerUnavailable",
    "OrderRequest",
    "UnknownOrder",
    "client_order_id",
]
