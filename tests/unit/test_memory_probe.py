"""bench/memory_probe.py and bench/client_memory.py: which part of the service an allocation is put in, the
places they name and the report's per-client figures."""
from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from bench.client_memory import report
from bench.memory_probe import OTHER, ROOT, STACKS, category, short


def traceback(*frames: tuple[str, int]) -> tracemalloc.Traceback:
    """Frames outermost first, as a reader lists them (tracemalloc's raw order is the reverse)."""
    return tracemalloc.Traceback(tuple(reversed(frames)))


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, str]:
    """Source files whose line 1 is a green-thread switch or an ordinary statement."""
    files = {}
    for name, line in (("hub.py", "return self.greenlet.switch()"), ("plain.py", "x = 1")):
        path = tmp_path / "site-packages" / "eventlet" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n")
        files[name] = str(path)
    return files


def test_the_innermost_frame_decides() -> None:
    environ = traceback(("/x/site-packages/engineio/socket.py", 10), ("/x/site-packages/eventlet/wsgi.py", 837))
    assert category(environ) == "HTTP request: headers and environ"
    engineio = traceback(("/x/site-packages/eventlet/wsgi.py", 837), ("/x/site-packages/engineio/socket.py", 10))
    assert category(engineio) == "Engine.IO socket"


def test_a_frame_that_switches_green_threads_is_a_saved_stack(sources: dict[str, str]) -> None:
    assert category(traceback(("/x/site-packages/engineio/socket.py", 227), (sources["hub.py"], 1))) == STACKS
    assert category(traceback((sources["plain.py"], 1),)) == "green thread, timers, queues, locks"


def test_a_frame_of_no_known_part_looks_further_out_and_else_is_other() -> None:
    rooms = traceback((ROOT + "streaming/gateway/fastpath/rooms.py", 28), ("/usr/lib/python3.11/weakref.py", 1))
    assert category(rooms) == "the service: admission, rooms, writers"
    assert category(traceback(("/usr/lib/python3.11/socket.py", 335),)) == "socket objects and buffers"
    assert category(traceback(("/usr/lib/python3.11/weakref.py", 1),)) == OTHER


def test_report_divides_by_the_connected_clients() -> None:
    result = dict(mode="eventlet", connected=2000, subscribed=1990, rss=80_000_000, tcp=0,
                  categories={STACKS: {"bytes": 12_000_000, "blocks": 8000}, OTHER: {"bytes": 4_000_000, "blocks": 10}},
                  top_lines=[{"line": "socket.py:335", "bytes": 2_000_000, "blocks": 4000}])
    text = "\n".join(report(result))
    assert f"| {STACKS} | 6.0 | 4.0 | 75% |" in text
    assert "| **Python heap, traced** | **8.0** |" in text
    assert "RSS growth with tracing on: 40.0 KB per client" in text
    assert "| `socket.py:335` | 1.00 |" in text


def test_places_name_no_machine_directory() -> None:
    assert short("/v/lib/python3.11/site-packages/eventlet/hubs/hub.py") == "eventlet/hubs/hub.py"
    assert short("/opt/python/3.11.7/lib/python3.11/socket.py") == "socket.py"
    assert short(ROOT + "streaming/service.py") == "streaming/service.py"
