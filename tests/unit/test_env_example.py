""".env.example documents every setting with its default, and nothing else."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from dotenv import dotenv_values

from config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_with_its_default() -> None:
    documented = dotenv_values(ROOT / ".env.example")
    keys = {f.name.upper() for f in fields(Settings)}
    assert set(documented) == keys
    assert Settings.from_env({k: v for k, v in documented.items() if v is not None}) == Settings()


def test_every_key_has_a_line_of_meaning() -> None:
    """Each block of keys (lines between blank lines) opens with a comment saying what they mean."""
    blocks = (ROOT / ".env.example").read_text().split("\n\n")
    for block in blocks:
        lines = [line for line in block.splitlines() if line.strip()]
        if any(not line.startswith("#") for line in lines):
            assert lines[0].startswith("#"), f"undocumented: {lines}"
