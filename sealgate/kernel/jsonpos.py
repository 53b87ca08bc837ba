"""The line where each value of a JSON document starts, by JSON path (`$.panels[0].targets[1].expr`).

`json` keeps no positions, and findings about a dashboard name their place by JSON path; editors, SARIF and the
report's file:line column want a line too. One pass over the text, only for a file a finding is about.
"""

from __future__ import annotations

import bisect
import json.decoder
import re

_SPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null")


def value_lines(text: str) -> dict[str, int]:
    """Every value's JSON path → the line (1-based) its value starts on; {} for text that is not JSON. A key given
    twice points at its last value, as `json.loads` keeps it."""
    newlines = [match.start() for match in re.finditer("\n", text)]
    lines: dict[str, int] = {}

    def space(pos: int) -> int:
        match = _SPACE.match(text, pos)
        assert match is not None  # `*` matches the empty string
        return match.end()

    def value(pos: int, path: str) -> int:
        pos = space(pos)
        lines[path] = bisect.bisect_right(newlines, pos) + 1
        opening = text[pos : pos + 1]
        if opening == '"':
            return json.decoder.scanstring(text, pos + 1)[1]
        if opening in ("{", "["):
            closing, pos, index = ("}" if opening == "{" else "]"), space(pos + 1), 0
            if text[pos : pos + 1] == closing:
                return pos + 1
            while True:
                if opening == "{":
                    if text[pos : pos + 1] != '"':
                        raise ValueError(pos)
                    key, pos = json.decoder.scanstring(text, pos + 1)
                    pos = space(pos)
                    if text[pos : pos + 1] != ":":
                        raise ValueError(pos)
                    pos = value(pos + 1, f"{path}.{key}")
                else:
                    pos = value(pos, f"{path}[{index}]")
                    index += 1
                pos = space(pos)
                if text[pos : pos + 1] == closing:
                    return pos + 1
                if text[pos : pos + 1] != ",":
                    raise ValueError(pos)
                pos = space(pos + 1)
        match = _SCALAR.match(text, pos)
        if match is None:
            raise ValueError(pos)
        return match.end()

    try:
        value(0, "$")
    except (ValueError, IndexError, RecursionError):
        return {}
    return lines
