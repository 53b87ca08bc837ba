"""JSON Schema fragments checks use to declare their `with:` parameters, so every check spells a list of strings,
a label set, a Prometheus duration or a repository path the same way."""

from __future__ import annotations

from sealgate.sprint.spec import REPO_GLOB_FORMAT, REPO_PATH_FORMAT

STRING_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}
DURATION = {"type": "string", "pattern": "^([0-9]+(ms|[smhdwy]))+$", "examples": ["5m"]}
# Repository files a check reads: the spec loader resolves them when the spec loads (sprint/spec.py), so a path that
# names nothing is bad input at the spec's line, not a check failing after the stack started.
REPO_PATH = {"type": "string", "minLength": 1, "format": REPO_PATH_FORMAT}  # a file or folder that must exist
REPO_GLOBS = {  # globs (`**` crosses folders), each of which must match at least one file
    "type": "array",
    "items": {"type": "string", "minLength": 1, "format": REPO_GLOB_FORMAT},
    "minItems": 1,
}
