"""Benchmarks and measurements: scripts that print numbers (never pass/fail)."""
