"""Benchmarks, run by hand or nightly (`make bench`, `make bench-gx`); never part of `make test`."""
