"""Benchmarks that print figures (never timed assertions); see bench/README.md."""
