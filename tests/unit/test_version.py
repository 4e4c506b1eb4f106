"""Version and build details: the commit comes from .git when there is one."""
from __future__ import annotations

from pathlib import Path

from streaming.runtime.version import VERSION, build_details, git_commit

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_commit_from_a_branch_ref(tmp_path: Path) -> None:
    (tmp_path / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "refs" / "heads" / "main").write_text(SHA + "\n")
    assert git_commit(tmp_path) == SHA[:12]


def test_commit_from_packed_refs_and_detached_head(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "packed-refs").write_text(f"# pack-refs\n{SHA} refs/heads/main\n")
    assert git_commit(tmp_path) == SHA[:12]
    (tmp_path / ".git" / "HEAD").write_text(SHA)
    assert git_commit(tmp_path) == SHA[:12]


def test_no_checkout_means_unknown(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == "unknown"
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("garbage")
    assert git_commit(tmp_path) == "unknown"


def test_build_details() -> None:
    details = build_details("gevent")
    assert details["version"] == VERSION and details["async_mode"] == "gevent"
    assert details["python"].count(".") == 2
