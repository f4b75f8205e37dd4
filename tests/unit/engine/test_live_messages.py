"""The messages a live run's child hands back are untrusted: each is checked before any order is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quantfleet.core.errors import UserError
from quantfleet.engine.live.messages import ORDERS_FILE, Cancel, Submit, read_messages


def write(work: Path, body: Any) -> None:
    (work / ORDERS_FILE).write_text(json.dumps(body))


def test_the_childs_messages_are_checked_before_anything_is_sent(tmp_path: Path) -> None:
    """The child is untrusted: a forged sequence, a NaN quantity or junk fails the run, naming the problem."""
    good = {"op": "submit", "seq": 1, "symbol": "AAA", "quantity": 5, "type": "market", "tif": "gtc", "target_value": 0}
    write(tmp_path, {"messages": [good, {"op": "cancel", "client_id": "qf-x-1-1"}], "state": {"n": 1}})
    out = read_messages(tmp_path)
    assert out.state == {"n": 1}
    assert isinstance(out.messages[0], Submit)
    assert out.messages[0].request("qf-abc-1-1").quantity == 5
    assert out.messages[1] == Cancel("qf-x-1-1")
    for bad, why in [
        ({**good, "seq": 7}, "seq is 7 where 1 comes next"),
        ({**good, "quantity": "lots"}, "not a finite number"),
        ({**good, "type": "moon"}, "malformed"),
        ({"op": "wire", "to": "x"}, "neither submit nor cancel"),
    ]:
        write(tmp_path, {"messages": [bad], "state": {}})
        with pytest.raises(UserError, match=why):
            read_messages(tmp_path)
    (tmp_path / ORDERS_FILE).write_text("{not json")
    with pytest.raises(UserError, match="not JSON"):
        read_messages(tmp_path)
