"""Benchmarks: `make bench` runs every bench/bench_*.py and saves results under bench/results/."""
