"""The Redis keys and pub/sub channels of a cluster. Pure.

Keys live in the service's Redis database (REDIS_DB), beside the ticker cache and the histories
(``history:<kind>:<SYMBOL>``, ``history:meta``). Pub/sub channels belong to no database in Redis, so their names
carry the database number: two services on one Redis with different REDIS_DB never hear each other.
"""
from __future__ import annotations

__all__ = ["LEADER", "TERM", "ORDER", "NODE_PREFIX", "DEMAND_PREFIX", "demand_key", "node_key", "topic",
           "topic_prefix"]

LEADER = "cluster:leader"  # "<node id>:<term>" of the leader, with the lock's TTL
TERM = "cluster:term"  # the last term handed out (INCR): each leadership has a higher one
NODE_PREFIX = "cluster:node:"  # a node's heartbeat (JSON), with a TTL
DEMAND_PREFIX = "cluster:demand:"  # a gateway's wanted channel keys (a set), with a TTL
ORDER = "history:order"  # channel key -> the order value (event time, trade id, update id) of its newest update


def node_key(node: str) -> str:
    return NODE_PREFIX + node


def demand_key(node: str) -> str:
    return DEMAND_PREFIX + node


def topic_prefix(db: int) -> str:
    return f"updates:{db}:"


def topic(db: int, channel_key: str) -> str:
    """The pub/sub channel of one channel's updates, e.g. ``updates:0:trade:BTCUSDT``."""
    return topic_prefix(db) + channel_key
