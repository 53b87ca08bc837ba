"""Shared by the property-based bad-input tests: random JSON-like values, every node's path in a document, and a
copy of a document with one node replaced."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=12), st.floats(allow_nan=False))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def node_paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every node below `node` (not `node` itself)."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out += [(*prefix, key), *node_paths(value, (*prefix, key))]
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += [(*prefix, index), *node_paths(value, (*prefix, index))]
    return out


def replaced(document: Any, path: tuple[Any, ...], value: object) -> Any:
    """A deep copy of `document` with the node at `path` replaced by `value`."""
    result = copy.deepcopy(document)
    node = result
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return result
