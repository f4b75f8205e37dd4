"""Arrow schemas of the market-data tables.

Bars handed to and returned by the store use :data:`BARS_SCHEMA` (one row per
symbol and bar; ``ts`` is the bar's opening time in UTC; daily bars are
stamped at midnight UTC of their session date). On disk the bars table adds
the partition columns of :data:`PARTITION_COLUMNS`.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "BARS_SCHEMA",
    "CORPORATE_ACTIONS_SCHEMA",
    "INSTRUMENTS_SCHEMA",
    "PARTITION_COLUMNS",
    "PRICE_FIELDS",
    "STORED_BARS_SCHEMA",
    "VALUE_FIELDS",
]

TS_TYPE = pa.timestamp("us", tz="UTC")
SOURCE_KEY = "quantfleet.source"  # schema metadata: where a batch of bars came from, for messages
PRICE_FIELDS = ("open", "high", "low", "close")
VALUE_FIELDS = (*PRICE_FIELDS, "volume")

BARS_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        *(pa.field(name, pa.float64(), nullable=False) for name in VALUE_FIELDS),
    ]
)

# Daily bars use month 0, so one symbol-year of daily bars is one file rather
# than twelve tiny ones; intraday bars are partitioned by calendar month.
PARTITION_COLUMNS = ("frequency", "symbol", "year", "month")

STORED_BARS_SCHEMA = pa.schema(
    [
        pa.field("frequency", pa.string(), nullable=False),
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("year", pa.int32(), nullable=False),
        pa.field("month", pa.int32(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        *(pa.field(name, pa.float64(), nullable=False) for name in VALUE_FIELDS),
    ]
)

CORPORATE_ACTIONS_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ex_date", pa.date32(), nullable=False),
        # "split": value is new shares per old share (2.0 for a 2-for-1 split);
        # "dividend": value is the cash amount per share, in the instrument's currency.
        pa.field("kind", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)

INSTRUMENTS_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("exchange", pa.string()),
        pa.field("asset_class", pa.string()),
        pa.field("currency", pa.string()),
        pa.field("first_date", pa.date32()),
        pa.field("last_date", pa.date32()),
    ]
)
