"""The line of each JSON value by JSON path (sealgate/kernel/jsonpos.py): exact on JSON, nothing on anything else."""

from __future__ import annotations

import pytest

from sealgate.kernel.jsonpos import value_lines

DASHBOARD = """{
  "title": "a [b] {c}, \\"d\\"",
  "panels": [
    {"type": "stat",
     "targets": [
       {"expr": "rate(x[5m])", "refId": "A"},
       {
         "expr": "up{job=\\"api\\"}"
       }
     ]},
    [],
    {}
  ],
  "version": -1.5e3, "editable": true, "links": null,
  "uid": "first",
  "uid": "last"
}
"""


@pytest.mark.parametrize(
    ("json_path", "line"),
    [
        ("$", 1),
        ("$.title", 2),  # brackets, braces, commas and quotes inside a string are text
        ("$.panels", 3),
        ("$.panels[0]", 4),
        ("$.panels[0].type", 4),
        ("$.panels[0].targets[0].expr", 6),
        ("$.panels[0].targets[1]", 7),
        ("$.panels[0].targets[1].expr", 8),
        ("$.panels[1]", 11),
        ("$.panels[2]", 12),
        ("$.version", 14),
        ("$.links", 14),
        ("$.uid", 16),  # a key given twice is its last value, as json.loads keeps it
    ],
)
def test_every_value_is_at_the_line_it_starts_on(json_path: str, line: int) -> None:
    assert value_lines(DASHBOARD)[json_path] == line


def test_a_path_the_document_does_not_hold_has_no_line() -> None:
    lines = value_lines(DASHBOARD)
    assert "$.panels[3]" not in lines
    assert "$.panels[0].targets[2]" not in lines


@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2', '{"a": 1,}', '{"a": tru}', "[1 2]", "{a: 1}", "groups:\n  - name: x\n", ""],
    ids=["truncated", "trailing-comma", "bad-literal", "missing-comma", "unquoted-key", "yaml", "empty"],
)
def test_text_that_is_not_json_gives_no_lines(text: str) -> None:
    assert value_lines(text) == {}
