"""techno-os-api: the small LLM gateway whose metrics sprints F9.10 and F9.11 observe.

Runs inside a container (or as a plain process): it must never import sealgate.
"""

__version__ = "f9.11"
