"""Evidence primitives: atomic writes, schema validation on read with JSON paths, redaction."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from demo import make_demo_repo

from sealgate import engine
from sealgate.api.context import RunOptions
from sealgate.evidence.store import EvidenceStore
from sealgate.kernel.errors import EvidenceError
from sealgate.kernel.redact import REDACTED, redact_argv, redact_text

WRITER = """
import sys
from pathlib import Path
from sealgate.kernel.fsutil import atomic_write
atomic_write(Path(sys.argv[1]), b"x" * (400 * 1024 * 1024))
"""


def test_interrupted_write_leaves_the_previous_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "eixo_0.json"
    target.write_bytes(b'{"previous": true}')
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(tmp_path.glob(".eixo_0.json.*.tmp")):
        time.sleep(0.005)
    assert list(tmp_path.glob(".eixo_0.json.*.tmp")), "the writer never started writing"
    proc.send_signal(signal.SIGKILL)  # midway through the write: no cleanup code runs at all
    proc.wait(timeout=10)
    assert target.read_bytes() == b'{"previous": true}'


def test_evidence_invalid_against_schema_is_refused_with_a_json_path(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert engine.eixo(root, "DEMO", 0, RunOptions(backend="local"), out=lambda _: None) == 0
    path = root / "artifacts" / "demo" / "eixo_0.json"
    document = json.loads(path.read_text())
    document["predicate"]["checks"][1]["status"] = "fine"
    path.write_text(json.dumps(document))
    with pytest.raises(EvidenceError) as info:
        EvidenceStore(root, "demo").read_stage(0)
    assert str(info.value.problems[0]) == (
        "artifacts/demo/eixo_0.json: $.predicate.checks[1].status: 'fine' is not one of "
        "['passed', 'failed', 'errored', 'skipped']"
    )
    path.write_text("{not json")
    with pytest.raises(EvidenceError, match=r"artifacts/demo/eixo_0.json: not valid JSON"):
        EvidenceStore(root, "demo").read_stage(0)


def test_deleted_attachment_is_named(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert engine.eixo(root, "DEMO", 1, RunOptions(backend="local"), out=lambda _: None) == 0
    (root / "artifacts" / "demo" / "eixo_1" / "gamma.log").unlink()
    with pytest.raises(
        EvidenceError, match=r"\$\.predicate\.attachments\[0\]: artifacts/demo/eixo_1/gamma.log is missing"
    ):
        EvidenceStore(root, "demo").read_stage(1)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GF_SECURITY_ADMIN_PASSWORD=s3cret", "s3cret"),
        ("export API_TOKEN='abc def'", "abc def"),
        ("postgres://app:pa55word@db:5432/x", "pa55word"),
        ("AWS_SECRET_ACCESS_KEY: AKIAXYZ", "AKIAXYZ"),
        ("private_key=-----BEGIN", "-----BEGIN"),
        ("DATA_SOURCE_PASS=pg-s3cret", "pg-s3cret"),  # postgres_exporter's password variable
        ("SLACK_WEBHOOK_URL=https://hooks.example.invalid/services/T1/B2/tok3n", "tok3n"),
        ("PAGERDUTY_ROUTING_KEY: 0123456789abcdef0123456789abcdef", "0123456789abcdef"),
        ("routing_key=0123456789abcdef0123456789abcdef", "0123456789abcdef"),
        ("OFFSITE_S3_SECRET_ACCESS_KEY=wJalr/K7MDENG", "wJalr/K7MDENG"),
    ],
)
def test_secret_values_are_redacted(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted and REDACTED in redacted


def test_ordinary_values_are_kept_and_argv_flags_redacted() -> None:
    assert redact_text("VERITTA_CB_THRESHOLD=3 severity=critical") == "VERITTA_CB_THRESHOLD=3 severity=critical"
    assert redact_text("PASS_RATE=0.9 BYPASS=1") == "PASS_RATE=0.9 BYPASS=1"  # only a name *ending* in _PASS
    assert redact_argv(["psql", "--password", "hunter2", "-h", "db"]) == ["psql", "--password", REDACTED, "-h", "db"]
    hook = "https://hooks.example.invalid/services/T1/B2/tok3n"
    assert redact_argv(["notify", "--slack-webhook-url", hook]) == ["notify", "--slack-webhook-url", REDACTED]


def test_metric_names_about_llm_tokens_are_not_secrets() -> None:
    from sealgate.kernel.redact import redact_mapping

    assert redact_mapping({"llm_tokens_total": 5, "GITHUB_TOKEN": "abc", "token": "x"}) == {
        "llm_tokens_total": 5,
        "GITHUB_TOKEN": REDACTED,
        "token": REDACTED,
    }


def test_yaml_merge_keys_resolve_with_lines() -> None:
    from sealgate.kernel.yamlsource import parse_yaml

    doc = parse_yaml("base: &b\n  a: 1\n  b: 2\nx:\n  <<: *b\n  b: 3\n", "c.yml")
    assert doc.value["x"] == {"a": 1, "b": 3}
    assert doc.where(["x", "b"]) == "c.yml:6" and doc.where(["x", "a"]) == "c.yml:2"
