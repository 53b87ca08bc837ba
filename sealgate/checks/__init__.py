"""The check library: one module per kind of stage, one function per check, each registered by `@check` when its
module is imported. `library()` imports them all; nothing else does, so a command that needs one check module
(`sealgate lint`) imports only that one."""

from __future__ import annotations

import importlib
import pkgutil

from sealgate.api.registry import REGISTRY
from sealgate.model.registry import Registry


def library() -> Registry:
    """Every library check registered (plugins register into the same registry when loaded)."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY
