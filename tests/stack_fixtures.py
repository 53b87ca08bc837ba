"""Fixtures that bring the governed stack up for real (owned by the stack backends)."""
