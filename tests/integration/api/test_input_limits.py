"""Counts and lengths are held to their settings before any work, and data the database cannot
store (NUL) is a 422 naming the field: never a 500, never a stored oversized prediction."""

from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.integration.api.conftest import Api

LABELS = ["cat", "dog", "ship"]


@pytest.fixture
def api_settings() -> dict[str, object]:
    return {
        "api_max_images": 2,
        "api_max_candidate_images": 2,
        "api_max_candidate_texts": 3,
        "api_max_text_chars": 50,
        "api_max_templates": 4,
        "api_max_template_chars": 40,
        "api_max_captions": 12,
        "api_max_image_bytes": 64 << 10,
    }


@pytest.fixture
def image(shared_data: Path) -> tuple[str, bytes]:
    path = sorted((shared_data / "cifar10" / "test" / "cat").iterdir())[0]
    return path.name, path.read_bytes()


def _refused(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail


def _classify(client: httpx.Client, images: list[tuple[str, bytes]], **form: object):  # noqa: ANN202
    files = [("images", (name, data)) for name, data in images]
    return client.post("/v1/classify", files=files, data={"labels": LABELS, **form})


def test_classify_limits_name_their_settings(api: Api, image: tuple[str, bytes]) -> None:
    with api.client("app") as client:
        _refused(_classify(client, [image] * 3), 422, "images", "API_MAX_IMAGES")
        big = ("big.png", image[1] + b"\0" * (64 << 10))
        _refused(_classify(client, [big]), 413, "big.png", "API_MAX_IMAGE_BYTES")
        many = [f"a photo of {i} {{}}." for i in range(5)]
        _refused(_classify(client, [image], template=many), 422, "API_MAX_TEMPLATES")
        long_template = ["a very, very, very, very, very long photo of a {}."]
        _refused(_classify(client, [image], template=long_template), 422, "API_MAX_TEMPLATE_CHARS")
        # 4 labels x 4 templates = 16 captions: over 12, though each count is within its own.
        four = ["a {}.", "the {}.", "my {}.", "one {}."]
        response = _classify(client, [image], labels=[*LABELS, "frog"], template=four)
        _refused(response, 422, "16 captions", "API_MAX_CAPTIONS")
        # Within every limit, the request gets as far as the (empty) model: a 409, not a limit.
        assert _classify(client, [image], template=four[:3]).status_code == 409
    with api.client("annotator") as client:
        stored = client.post(
            "/v1/label-sets",
            json={"name": "too-big", "classes": [*LABELS, "frog"], "templates": four},
        )
        _refused(stored, 422, "API_MAX_CAPTIONS")
    with api.platform.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM label_sets")).scalar_one() == 0


def test_retrieve_and_upload_limits_name_their_settings(api: Api, image: tuple[str, bytes]) -> None:
    with api.client("app") as client:
        texts = client.post(
            "/v1/retrieve",
            data={"direction": "image_to_text", "candidate_texts": ["a", "b", "c", "d"]},
            files=[("image", image)],
        )
        _refused(texts, 422, "candidate_texts", "API_MAX_CANDIDATE_TEXTS")
        long_text = client.post(
            "/v1/retrieve",
            data={"direction": "image_to_text", "candidate_texts": ["x" * 51]},
            files=[("image", image)],
        )
        _refused(long_text, 422, "candidate_texts", "51 characters", "API_MAX_TEXT_CHARS")
        query = client.post("/v1/retrieve", data={"direction": "text_to_image", "text": "y" * 51})
        _refused(query, 422, "text", "API_MAX_TEXT_CHARS")
        images = client.post(
            "/v1/retrieve",
            data={"direction": "text_to_image", "text": "a cat"},
            files=[("candidate_images", image)] * 3,
        )
        _refused(images, 422, "candidate_images", "API_MAX_CANDIDATE_IMAGES")
    with api.client("steward") as steward:
        assert steward.post("/v1/licenses", json={"name": "cc"}).status_code == 201
    with api.client("annotator") as client:
        caption = client.post(
            "/v1/pairs", data={"captions": ["z" * 51], "license": "cc"}, files=[("images", image)]
        )
        _refused(caption, 422, "captions", "API_MAX_TEXT_CHARS")
    with api.platform.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
        assert session.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 0


def _names_field(response: httpx.Response, *loc: str | int) -> None:
    assert response.status_code == 422, response.text
    assert [*loc] in [e["loc"] for e in response.json()["detail"]], response.text


def test_nul_in_any_field_is_a_422_naming_it(api: Api, image: tuple[str, bytes]) -> None:
    with api.client("steward") as steward:
        _names_field(steward.post("/v1/licenses", json={"name": "cc\x00by"}), "body", "name")
        _names_field(
            steward.post("/v1/licenses", json={"name": "ok", "holder": "\x00"}), "body", "holder"
        )
        lic = steward.post("/v1/licenses", json={"name": "cc-by"}).json()["id"]
        revoke = steward.post(f"/v1/licenses/{lic}/revoke", json={"reason": "ended\x00"})
        _names_field(revoke, "body", "reason")
        sets = steward.post(
            "/v1/label-sets", json={"name": "animals", "classes": ["cat", "d\x00g"]}
        )
        _names_field(sets, "body", "classes", 1)
        reject = steward.post("/v1/curation/reject", json={"pair_ids": [1], "reason": "\x00"})
        _names_field(reject, "body", "reason")
        mismatches = steward.get("/v1/curation/mismatches", params={"limit": "5\x00"})
        _names_field(mismatches, "query", "limit")
    with api.client("app") as client:
        _names_field(_classify(client, [image], labels=["cat", "d\x00g"]), "body", "labels")
        _names_field(_classify(client, [image], label_set="an\x00imals"), "body", "label_set")
        # httpx escapes a NUL in a file name (%00); a raw client need not.
        raw = (
            b'--b\r\nContent-Disposition: form-data; name="images"; filename="c\x00t.png"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + image[1] + b"\r\n"
            b'--b\r\nContent-Disposition: form-data; name="labels"\r\n\r\ncat\r\n'
            b'--b\r\nContent-Disposition: form-data; name="labels"\r\n\r\ndog\r\n--b--\r\n'
        )
        named = client.post(
            "/v1/classify", content=raw, headers={"Content-Type": "multipart/form-data; boundary=b"}
        )
        _names_field(named, "body", "images", "filename")
    with api.client("annotator") as client:
        upload = client.post(
            "/v1/pairs",
            data={"captions": ["a\x00cat"], "license": "cc-by"},
            files=[("images", image)],
        )
        _names_field(upload, "body", "captions")
    # Nothing was stored, the revocation did not happen, and the server is healthy.
    with api.platform.sessions() as session:
        assert session.execute(text("SELECT count(*) FROM licenses")).scalar_one() == 1
        assert session.execute(text("SELECT status FROM licenses")).scalar_one() == "active"
        assert session.execute(text("SELECT count(*) FROM label_sets")).scalar_one() == 0
    with api.client(None) as anonymous:
        assert anonymous.get("/health").json() == {"ok": True}
