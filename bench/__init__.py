"""Benchmarks: load and latency measurements, not part of the test run."""
