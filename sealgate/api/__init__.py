"""Layer 4, the check API: what a check — of the library or a project's plugin — is written against: the `check`
decorator and its registry, and the `Context` a check receives (spec, parameters, stack, recorders for evidence)."""
