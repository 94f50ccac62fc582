"""Benchmarks that print figures side by side with a peer in one run (never timed tests)."""
