"""Layer 7, evidence: the in-toto Statement of a stage, its JSON Schemas, the store and manifest, keyed digests and
DSSE envelopes, and the judge — the one place verdicts are computed from evidence on disk."""
