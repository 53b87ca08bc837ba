"""The sprint room: spec loading, the check registry, the run context and the stage runner."""
