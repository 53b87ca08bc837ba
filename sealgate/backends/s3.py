"""A minimal S3 client for the checks: the REST API with AWS Signature Version 4, path-style addressing, over the one
HTTP library sealgate already uses (requests).

Why its own: the offsite checks judge a copy *independently of the client that made it* (a project's backup script
may use awscli, rclone or boto3), and sealgate should not pull an SDK in for five calls. What it does is what any S3
client does on the wire — ListObjectsV2, GetObject, HeadObject, PutObject (with user metadata), DeleteObject — so it
works against AWS S3, MinIO, moto or any S3-compatible server. Credentials are passed in by the caller (read from the
variables the spec names) and never appear in an error, a URL or a log line.

A server that does not answer raises StackError naming its address (the check is *errored*: it could not run); an
S3 error answer raises S3Error with its status and S3 error code (the check judges it).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from sealgate.backends.errors import StackError
from sealgate.kernel.errors import Problem

TIMEOUT = 60.0
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


class S3Error(ValueError):
    """The server answered with an S3 error (HTTP status >= 300)."""

    def __init__(self, what: str, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(f"{what}: HTTP {status} {code}" + (f" ({message})" if message else ""))


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str
    last_modified: str  # as the server says it (ISO 8601)
    metadata: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* (from HEAD only)


def _quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _text(element: ElementTree.Element | None, tag: str) -> str:
    found = element.find(_NS + tag) if element is not None else None
    if found is None and element is not None:
        found = element.find(tag)  # a server that answers without the namespace
    return (found.text or "") if found is not None else ""


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"


def sign(
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    payload_sha256: str,
    headers: Mapping[str, str],
    credentials: Credentials,
    now: datetime.datetime,
) -> dict[str, str]:
    """The request's headers with AWS Signature Version 4 for S3 (`authorization`, `x-amz-date`,
    `x-amz-content-sha256`, `host`, and every given header, all signed). `path` is already URI-encoded."""
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    signed = {"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
    signed.update({k.lower(): " ".join(str(v).split()) for k, v in headers.items()})
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            path,
            "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items())),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{credentials.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (day, credentials.region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={signature}"
    )
    return signed


class S3:
    """One S3-compatible endpoint (`http://host:port`), with one key pair, in one region."""

    def __init__(
        self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1", timeout: float = TIMEOUT
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.host = urllib.parse.urlsplit(self.endpoint).netloc
        self._access_key = access_key
        self._secret_key = secret_key
        self.region = region
        self.timeout = timeout

    def __repr__(self) -> str:  # never the keys
        return f"S3({self.endpoint!r}, region={self.region!r})"

    def _call(
        self,
        method: str,
        bucket: str,
        key: str = "",
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        path = f"/{_quote(bucket)}" + (f"/{_quote(key, safe='/-_.~')}" if key else "")
        query = dict(query or {})
        signed = sign(
            method,
            self.host,
            path,
            query,
            hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256,
            headers or {},
            Credentials(self._access_key, self._secret_key, self.region),
            datetime.datetime.now(datetime.timezone.utc),
        )
        del signed["host"]  # requests sets it from the URL, to the same value
        url = self.endpoint + path + ("?" + urllib.parse.urlencode(sorted(query.items())) if query else "")
        what = f"{method} {self.endpoint}{path}"
        try:
            response = requests.request(
                method, url, headers=signed, data=body or None, timeout=self.timeout, stream=stream
            )
        except requests.Timeout:
            raise StackError(Problem(self.endpoint, f"{what} timed out after {self.timeout:g} s")) from None
        except requests.RequestException as exc:
            raise StackError(Problem(self.endpoint, f"{what} got no answer: {type(exc).__name__}")) from None
        if response.status_code >= 300:
            code, message = str(response.status_code), ""
            if method != "HEAD":
                try:
                    root = ElementTree.fromstring(response.content)
                    code, message = root.findtext("Code") or code, root.findtext("Message") or ""
                except ElementTree.ParseError:
                    message = response.text[:200]
            elif response.status_code == 404:
                code = "NotFound"
            raise S3Error(what, response.status_code, code, message)
        return response

    # -- operations -------------------------------------------------------------------------------------------------

    def objects(self, bucket: str, prefix: str = "") -> Iterator[S3Object]:
        """Every object under `prefix` (ListObjectsV2, page after page)."""
        token = ""
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            root = ElementTree.fromstring(self._call("GET", bucket, query=query).content)
            for item in [*root.findall(_NS + "Contents"), *root.findall("Contents")]:
                yield S3Object(
                    _text(item, "Key"),
                    int(_text(item, "Size") or 0),
                    _text(item, "ETag").strip('"'),
                    _text(item, "LastModified"),
                )
            token = _text(root, "NextContinuationToken")
            if _text(root, "IsTruncated").lower() != "true" or not token:
                return

    def head(self, bucket: str, key: str) -> S3Object:
        response = self._call("HEAD", bucket, key)
        metadata = {
            name.lower().removeprefix("x-amz-meta-"): value
            for name, value in response.headers.items()
            if name.lower().startswith("x-amz-meta-")
        }
        return S3Object(
            key,
            int(response.headers.get("Content-Length") or 0),
            str(response.headers.get("ETag") or "").strip('"'),
            str(response.headers.get("Last-Modified") or ""),
            metadata,
        )

    def download(self, bucket: str, key: str, dest: Path) -> int:
        """GetObject into `dest` (streamed); returns the bytes written."""
        written = 0
        with self._call("GET", bucket, key, stream=True) as response, dest.open("wb") as handle:
            for block in response.iter_content(1 << 20):
                handle.write(block)
                written += len(block)
        return written

    def upload(self, bucket: str, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        """PutObject with user metadata (x-amz-meta-*)."""
        headers = {f"x-amz-meta-{k}": v for k, v in (metadata or {}).items()}
        self._call("PUT", bucket, key, body=data, headers=headers)

    def delete(self, bucket: str, key: str) -> None:
        self._call("DELETE", bucket, key)
