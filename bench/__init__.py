"""Benchmarks that print figures (times, peak memory), each against in-process moto."""
