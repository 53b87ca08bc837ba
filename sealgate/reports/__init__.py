"""Layer 10, reports: the SEAL markdown (a view built in Python, laid out by Jinja2 templates in the spec's language),
the drill's gantt and coverage table, and the JUnit/SARIF outputs for CI."""
