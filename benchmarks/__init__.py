"""Benchmarks for `make bench`: batchrun and the SDK peer against the emulator (README.md)."""
