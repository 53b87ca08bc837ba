"""sealgate: a sprint's acceptance criteria, proven from evidence, sealed fail-closed."""

__version__ = "0.1.0"

# Stage numbers are a contract (design.md): they name evidence files and Nox sessions.
STAGES: dict[int, str] = {
    0: "preflight",
    1: "containerize",
    2: "rules",
    3: "backup",
    4: "env_config",
    5: "dashboard",
    6: "tests",
}
