"""in-toto attestations read the way other tools read them: parsed with in-toto-attestation's own definitions (its
protobuf bindings of the Statement and of the predicates), unknown fields refused, then the rules the predicates'
specifications state that a protobuf type cannot (required fields, enumerated values).

Shared by the tests of the Verification Summary (`verify --vsa`, tests/core/test_vsa.py) and of the stack suite's
Test Result (tests/checks/test_test_result.py).
"""

from __future__ import annotations

import copy
from typing import Any

from google.protobuf import json_format
from in_toto_attestation.predicates.test_result.v0 import test_result_pb2
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement

VSA_TYPE = "https://slsa.dev/verification_summary/v1"
TEST_RESULT_TYPE = "https://in-toto.io/attestation/test-result/v0.1"


class Invalid(ValueError):
    """The document is not a valid attestation of its type; the message says why."""


def _parse(document: Any, message: Any, what: str) -> Any:
    try:
        return json_format.ParseDict(document, message)  # ignore_unknown_fields=False: an unknown field is refused
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise Invalid(f"{what}: {exc}") from None


def parse_statement(document: Any, predicate_type: str) -> Any:
    """An in-toto Statement v1 (subjects with digests, a predicate) of `predicate_type`."""
    statement = _parse(document, statement_pb2.Statement(), "statement")
    try:
        Statement.copy_from_pb(statement).validate()
    except ValueError as exc:
        raise Invalid(f"statement: {exc}") from None
    if statement.predicate_type != predicate_type:
        raise Invalid(f"predicateType is {statement.predicate_type!r}, expected {predicate_type!r}")
    return statement


def parse_vsa(document: Any) -> tuple[Any, list[str]]:
    """(the VerificationSummary message, its verifiedLevels) of a SLSA VSA v1 Statement."""
    parse_statement(document, VSA_TYPE)
    predicate = copy.deepcopy(document["predicate"])
    # The SLSA spec types `verifiedLevels` as an array of SlsaResult strings (verification_summary/v1, and its
    # example `["SLSA_BUILD_LEVEL_3"]`); in-toto-attestation 0.9.3's binding declares it one string
    # (`string verified_levels`), which would refuse every VSA that follows the spec. The spec wins: the array is
    # checked here, everything else by the binding.
    levels = predicate.pop("verifiedLevels", None)
    if not isinstance(levels, list) or not levels or not all(isinstance(level, str) and level for level in levels):
        raise Invalid(f"verifiedLevels: {levels!r} is not a non-empty array of strings (SLSA VSA v1)")
    summary = _parse(predicate, vsa_pb2.VerificationSummary(), "predicate")
    missing = [
        name
        for name, present in (
            ("verifier.id", bool(summary.verifier.id)),
            ("timeVerified", summary.HasField("time_verified")),
            ("resourceUri", bool(summary.resource_uri)),
            ("policy.uri", bool(summary.policy.uri)),
        )
        if not present
    ]
    if missing:
        raise Invalid(f"predicate: required {', '.join(missing)} missing")
    if summary.verification_result not in ("PASSED", "FAILED"):
        raise Invalid(f"verificationResult: {summary.verification_result!r} is neither PASSED nor FAILED")
    if (summary.verification_result == "FAILED") != (levels == ["FAILED"]):
        raise Invalid(f"verifiedLevels: {levels} with verificationResult {summary.verification_result}")
    if any(not attestation.digest for attestation in summary.input_attestations):
        raise Invalid("inputAttestations: every entry must carry the attestation's digest")
    return summary, levels


def parse_test_result(document: Any) -> Any:
    """The TestResult message of an in-toto Test Result (v0.1) Statement."""
    parse_statement(document, TEST_RESULT_TYPE)
    if "configuration" not in document["predicate"]:
        raise Invalid("predicate: required configuration missing")
    result = _parse(document["predicate"], test_result_pb2.TestResult(), "predicate")
    if result.result not in ("PASSED", "WARNED", "FAILED"):
        raise Invalid(f"result: {result.result!r} is not PASSED, WARNED or FAILED")
    for descriptor in result.configuration:
        try:
            ResourceDescriptor.copy_from_pb(descriptor).validate()
        except ValueError as exc:
            raise Invalid(f"configuration: {exc}") from None
    return result
