"""Bodies are refused before they are read: without a valid key from the headers alone, with
one past the route's byte limit while the body streams (JSON and multipart, declared length
or chunked). The client counts what the server let it send: a refused 300 MB body stops within
the few MB that socket buffers hold."""

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.api.conftest import Api

HUGE = 300 << 20
CHUNK = 64 << 10
# What loopback socket buffers (both sides) and uvicorn's 64 KiB read-ahead can absorb from a
# client before the server reads on: far below any body that was read.
SENT_AT_MOST = 32 << 20
BOUNDARY = "asifdbtestboundary"


@pytest.fixture
def api_settings() -> dict[str, object]:
    return {"api_max_upload_bytes": 4 << 20}


class Body:
    """A body streamed from a generator that counts the bytes the client managed to send."""

    def __init__(self, size: int, head: bytes = b"") -> None:
        self.size, self.head, self.sent = size, head, 0

    def __iter__(self) -> Iterator[bytes]:
        if self.head:
            self.sent += len(self.head)
            yield self.head
        while self.sent < self.size:
            chunk = b"x" * min(CHUNK, self.size - self.sent)
            self.sent += len(chunk)
            yield chunk


def _multipart_head() -> bytes:
    return (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="images"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()


def _send(
    api: Api, path: str, key: str | None, body: Body, content_type: str, *, declared: bool
) -> int | None:
    """POST the streamed body; the status, or None when the server closed on it unanswered."""
    headers = {"Content-Type": content_type}
    if key:
        headers["X-API-Key"] = key
    if declared:
        headers["Content-Length"] = str(body.size)
    try:
        with httpx.Client(base_url=api.url, timeout=60) as client:
            response = client.post(path, content=iter(body), headers=headers)
    except httpx.TransportError:
        return None
    return response.status_code


ROUTES = [
    ("/v1/licenses", "application/json"),
    ("/v1/pairs", f"multipart/form-data; boundary={BOUNDARY}"),
]


@pytest.mark.parametrize(("path", "content_type"), ROUTES)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("key", [None, "asif_00000000_not-a-real-key"], ids=["no-key", "bad-key"])
def test_a_body_without_a_valid_key_is_not_read(
    api: Api, path: str, content_type: str, declared: bool, key: str | None
) -> None:
    head = _multipart_head() if path == "/v1/pairs" else b'{"name": "'
    body = Body(HUGE, head)
    status = _send(api, path, key, body, content_type, declared=declared)
    assert status in (401, None), status
    assert body.sent < SENT_AT_MOST, f"the server read {body.sent} bytes of a keyless body"
    # The refusal came from the headers, and the server is fine: ask again, politely.
    with api.client(None) as anonymous:
        refused = anonymous.post(path, headers={"Content-Type": content_type}, content=b"{}")
        assert refused.status_code == 401 and "X-API-Key" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("path", "content_type", "role", "setting"),
    [
        ("/v1/licenses", "application/json", "steward", "API_MAX_JSON_BYTES"),
        (
            "/v1/pairs",
            f"multipart/form-data; boundary={BOUNDARY}",
            "annotator",
            "API_MAX_UPLOAD_BYTES",
        ),
    ],
)
def test_a_body_over_its_route_limit_is_refused_as_it_streams(
    api: Api, path: str, content_type: str, role: str, setting: str
) -> None:
    key = api.keys[role]
    # Declared: refused from the header, nothing read.
    declared = Body(HUGE, _multipart_head() if path == "/v1/pairs" else b"")
    assert _send(api, path, key, declared, content_type, declared=True) in (413, None)
    assert declared.sent < SENT_AT_MOST
    # Chunked, no length: counted as it arrives and refused past the limit.
    chunked = Body(HUGE, _multipart_head() if path == "/v1/pairs" else b'{"name": "')
    headers = {"Content-Type": content_type, "X-API-Key": key}
    with httpx.Client(base_url=api.url, timeout=60) as client:
        try:
            response = client.post(path, content=iter(chunked), headers=headers)
        except httpx.TransportError:
            response = None
    assert chunked.sent < SENT_AT_MOST, f"the server read {chunked.sent} bytes past its limit"
    if response is not None:
        assert response.status_code == 413
        assert setting in response.json()["detail"]
    # The refusal names the limit when the client can read it (a small body, declared).
    small_limit = 1 << 20 if path == "/v1/licenses" else 4 << 20
    with api.client(role) as client:
        refused = client.post(
            path, content=b"x" * (small_limit + 1), headers={"Content-Type": content_type}
        )
    assert refused.status_code == 413 and setting in refused.json()["detail"]
    assert str(small_limit) in refused.json()["detail"]
