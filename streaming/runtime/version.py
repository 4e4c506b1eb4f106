"""The service's version and build details, for /health and the build_info metric."""
from __future__ import annotations

import platform
from pathlib import Path

from config import PROJECT_ROOT

__all__ = ["VERSION", "build_details", "git_commit"]

VERSION = "1.1.0"

def git_commit(root: Path = PROJECT_ROOT) -> str:
    """The checked-out commit (12 hex digits) read from ``.git``, or ``unknown`` outside a git checkout."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if ref_file.is_file():
                head = ref_file.read_text().strip()
            else:  # packed refs: "<sha> <ref>" lines
                packed = (git / "packed-refs").read_text().splitlines()
                head = next((line.split()[0] for line in packed if line.endswith(" " + ref)), "")
    except OSError:
        return "unknown"
    return head[:12] if len(head) >= 12 and all(c in "0123456789abcdef" for c in head) else "unknown"


def build_details(async_mode: str) -> dict[str, str]:
    """Version, commit, Python version and async mode: the labels of build_info and /health's ``build``."""
    return {
        "version": VERSION,
        "commit": git_commit(),
        "python": platform.python_version(),
        "async_mode": async_mode,
    }
