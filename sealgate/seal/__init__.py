"""Layer 9, seal operations: the tag's preconditions and message, the seal commit, verify (from git objects alone),
publish, and the sprint lifecycle (status, which sprint to seal, drafting the next one)."""
