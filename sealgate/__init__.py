"""sealgate: a sprint's acceptance criteria, proven from evidence, sealed fail-closed."""

__version__ = "0.1.0"
