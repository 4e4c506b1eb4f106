"""File descriptors: raise the process's open-files limit, and plan how many clients fit under it.

``plan_descriptors`` is pure (a limit and the settings in, the numbers to serve with out); ``raise_open_files_limit``
is the one call that changes the process.
"""
from __future__ import annotations

import resource
from dataclasses import dataclass

__all__ = [
    "DescriptorError", "DescriptorPlan", "OpenFilesLimit", "RESERVED_DESCRIPTORS", "MIN_CLIENTS", "plan_descriptors",
    "raise_open_files_limit",
]

# Descriptors the service needs besides its clients: the listening socket, the hub's poller and pipes, the Binance
# connections (one per 1,024 streams, and a successor during a rotation), Binance REST and Redis connections, log
# files, stdio.
RESERVED_DESCRIPTORS = 64
# Below this many clients the service refuses to start: the limit is a mistake, not a sizing decision.
MIN_CLIENTS = 16
# Linux's default ceiling for one process (fs.nr_open); used when the hard limit is "unlimited".
UNLIMITED_CEILING = 1_048_576


@dataclass(frozen=True)
class OpenFilesLimit:
    soft: int  # what the process may open now
    before: int  # the soft limit it started with


@dataclass(frozen=True)
class DescriptorPlan:
    max_connections: int  # Socket.IO clients admitted (MAX_CONNECTIONS, lowered to fit if needed)
    tcp_per_address: int  # open TCP connections one address may hold (MAX_TCP_CONNECTIONS_PER_IP, effective)
    lowered: bool  # MAX_CONNECTIONS had to be lowered
    message: str  # one line saying what was decided, for the start-up log


class DescriptorError(ValueError):
    """The open-files limit leaves no room for clients."""


def plan_descriptors(
    limit: int, before: int, max_connections: int, per_ip: int, tcp_per_ip: int, http_headroom: int
) -> DescriptorPlan:
    """How many clients and connections per address the service serves with ``limit`` open files.

    Every client holds one descriptor and the server admits ``http_headroom`` HTTP requests beyond the clients, so
    ``MAX_CONNECTIONS`` is lowered to ``limit - RESERVED_DESCRIPTORS - http_headroom`` when it is above it.
    ``tcp_per_ip`` 0 means automatic: ``per_ip + http_headroom``, but never more than half of the descriptors, so
    that one address cannot starve the others. An explicit value is kept (up to what the limit allows at all).
    Raises DescriptorError when fewer than MIN_CLIENTS clients would fit.
    """
    usable = limit - RESERVED_DESCRIPTORS
    room = usable - http_headroom
    raised = f"open-files limit {limit}" + (f" (raised from {before})" if limit > before else "")
    if room < MIN_CLIENTS:
        raise DescriptorError(
            f"the {raised} leaves room for {max(room, 0)} clients; raise it to at least "
            f"{RESERVED_DESCRIPTORS + http_headroom + MIN_CLIENTS} (ulimit -n, systemd LimitNOFILE=)"
        )
    clients = min(max_connections, room)
    if tcp_per_ip:
        per_address = min(tcp_per_ip, usable)
    else:
        per_address = max(1, min(per_ip + http_headroom, usable // 2))
    lowered = clients < max_connections
    if lowered:
        message = (f"{raised}: MAX_CONNECTIONS lowered from {max_connections} to {clients} to fit, "
                   f"{per_address} TCP connections per address; raise the limit (ulimit -n, systemd LimitNOFILE=) "
                   f"to serve more")
    else:
        message = f"{raised}: room for MAX_CONNECTIONS={clients}, {per_address} TCP connections per address"
    return DescriptorPlan(clients, per_address, lowered, message)


def raise_open_files_limit() -> OpenFilesLimit:
    """Raise the soft RLIMIT_NOFILE to the hard limit (a process may always do that); returns the result."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY:
        return OpenFilesLimit(UNLIMITED_CEILING, UNLIMITED_CEILING)
    if soft >= target:
        return OpenFilesLimit(soft, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. a hard limit above the kernel's nr_open: keep what we have
        return OpenFilesLimit(soft, soft)
    return OpenFilesLimit(target, soft)
