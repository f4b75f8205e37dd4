"""What every ingest adapter returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from quantfleet.data.schema import CORPORATE_ACTIONS_SCHEMA

__all__ = ["VendorData"]


@dataclass(frozen=True)
class VendorData:
    """Bars (and, when the vendor has them, corporate actions and instruments) from one fetch.

    ``bars`` has the columns of :data:`~quantfleet.data.schema.BARS_SCHEMA`
    (daily bars stamped at midnight UTC of the session date; intraday bars at
    their opening time in UTC). ``actions`` has the columns of
    :data:`~quantfleet.data.schema.CORPORATE_ACTIONS_SCHEMA`.
    """

    bars: pa.Table
    actions: pa.Table = field(default_factory=CORPORATE_ACTIONS_SCHEMA.empty_table)
    instruments: pa.Table | None = None
