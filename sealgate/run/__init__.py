"""Layer 8, running a sprint: the spec opened with the check library and its plugins, the stack brought up on demand,
each stage's checks run and its evidence written. The runner runs what it is told and never judges."""
