"""LLM access: the simulated provider, the circuit breaker and the client that ties them to the metrics."""
