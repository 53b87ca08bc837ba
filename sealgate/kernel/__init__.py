"""Layer 0, the kernel: utilities that know nothing of sprints, checks or seals — user-facing errors and exit codes,
digests and atomic writes, located YAML, JSON Schemas shipped as package data, polling, child processes, host ports,
redaction of secrets, and the few git facts sealgate relies on. Imports nothing of sealgate above it."""
