"""Layer 3, the sprint: a spec as data, read and validated from `sprint/<ID>.yaml` (+ its waivers) against a check
registry handed in, and where a sprint's seal is found in git (the chain of bases)."""
