"""The Socket.IO EVENT packet of a recorded update, as text, exactly as python-socketio would encode it. Pure.

A recorded update is its compact wire JSON object without a position (``{"symbol":"BTCUSDT",...}``, as the
recorder and the cluster's histories store it); its packet appends the position as the payload's last members
(``2["price_update",{...,"offset":7,"epoch":"9f3a01bc"}]``), and a recovery marks it ``recovered: true`` after
them. Built by slicing text: a recovery of many updates parses and encodes no JSON.
"""
from __future__ import annotations

__all__ = ["packet", "recovered"]


def packet(event: str, data: str, offset: int, epoch: str) -> str:
    """The Socket.IO EVENT packet of an update (``data``: its compact wire JSON object without a position)."""
    return f'2["{event}",{data[:-1]},"offset":{offset},"epoch":"{epoch}"}}]'


def recovered(packet_text: str) -> str:
    """The same packet marked ``recovered: true`` (its payload's last member), as recoveries send it."""
    return packet_text[:-2] + ',"recovered":true}]'
