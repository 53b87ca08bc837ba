"""techno-os-api: the small LLM gateway whose metrics sprint F9.10 observes.

Runs inside a container (or as a plain process): it must never import sealgate.
"""

__version__ = "f9.10"
