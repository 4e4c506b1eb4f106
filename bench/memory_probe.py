"""A tracemalloc probe around ``python app.py``, for what each connected client holds.

    python -m bench.memory_probe OUT.json python app.py

Runs the script (the last argument) as ``__main__``, as ``python app.py`` would. The first SIGUSR2 starts
tracing: that is the baseline, and tracing from the start would slow the imports by a factor of 30. The second
SIGUSR2 writes what was allocated since and is still held to OUT.json, by category (``CATEGORIES``) and by the
allocating lines that hold the most. bench/client_memory.py drives it.
"""
from __future__ import annotations

import json
import linecache
import os
import re
import runpy
import signal
import sys
import tracemalloc
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

ROOT = str(Path(__file__).resolve().parents[1]) + "/"
FRAMES = 16  # deep enough to reach the library call that a client's allocation came from
TOP_LINES = 25

# (category, places): an allocation belongs to the first category one of its frames matches, trying its innermost
# frame first; a place is the start of a frame's file as ``short()`` names it. A frame whose source line switches
# green threads means the saved stack of one.
SWITCHES = (".switch(", "_wait(", "wait_read(", "wait_write(")
STACKS = "green thread: saved stack"
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("HTTP request: headers and environ", ("email/", "http/server.py", "http/client.py", "urllib/parse.py",
                                           "eventlet/wsgi.py", "gevent/pywsgi.py", "flask_socketio/__init__.py")),
    ("socket objects and buffers", ("socket.py", "eventlet/greenio/", "gevent/_socket",
                                    "streaming/runtime/takeover.py")),
    ("WebSocket", ("eventlet/websocket.py", "streaming/gateway/fastpath/gevent_ws.py",
                   "streaming/gateway/fastpath/wsproto_socket.py", "streaming/gateway/fastpath/detached.py",
                   "simple_websocket/", "wsproto/")),
    ("green thread, timers, queues, locks", ("streaming/gateway/fastpath/watchers.py",)),
    ("Engine.IO socket", ("engineio/",)),
    ("Socket.IO session", ("socketio/", "bidict/")),
    ("the service: admission, rooms, writers", ("streaming/", "cache/", "metrics/")),
    ("green thread, timers, queues, locks", ("eventlet/", "gevent/", "greenlet/")),
)
OTHER = "other"


def short(path: str) -> str:
    """A file's place without the machine's directories: ``eventlet/hubs/hub.py`` (an installed package),
    ``socket.py`` (the standard library), ``streaming/service.py`` (this repository)."""
    if "site-packages/" in path:
        return path.split("site-packages/")[-1]
    if path.startswith(ROOT):
        return path[len(ROOT):]
    return re.sub(r"^.*/lib/python3[.0-9]*/", "", path)


def category(traceback: tracemalloc.Traceback) -> str:
    for frame in reversed(traceback):  # innermost first
        if any(switch in linecache.getline(frame.filename, frame.lineno) for switch in SWITCHES):
            return STACKS
        place = short(frame.filename)
        for name, places in CATEGORIES:
            if place.startswith(places):
                return name
    return OTHER


def summary(snapshot: tracemalloc.Snapshot) -> dict[str, object]:
    by_category: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for trace in snapshot.traces:
        cell = by_category[category(trace.traceback)]
        cell[0] += trace.size
        cell[1] += 1
    top = [{"line": f"{short(frame.filename)}:{frame.lineno}", "bytes": stat.size, "blocks": stat.count}
           for stat in snapshot.statistics("lineno")[:TOP_LINES] for frame in [stat.traceback[-1]]]
    return {"categories": {name: {"bytes": size, "blocks": count} for name, (size, count) in by_category.items()},
            "top_lines": top}


class Probe:
    def __init__(self, out: str) -> None:
        self.out = out

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
            return
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        tracemalloc.stop()
        with open(self.out + ".part", "w") as out:
            json.dump(summary(snapshot), out)
        os.replace(self.out + ".part", self.out)  # whole, for the reader that waits for it


def main(argv: Sequence[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m bench.memory_probe OUT.json [python] app.py")
    signal.signal(signal.SIGUSR2, Probe(argv[0]).on_signal)
    script = argv[-1]
    sys.argv = [script]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
