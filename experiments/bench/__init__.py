"""Benchmark commands; each writes its figures as JSON."""
