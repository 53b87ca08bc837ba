"""JSON Schema fragments checks use to declare their `with:` parameters, so every check spells a list of strings,
a label set or a Prometheus duration the same way."""

from __future__ import annotations

STRING_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}
DURATION = {"type": "string", "pattern": "^([0-9]+(ms|[smhdwy]))+$"}
