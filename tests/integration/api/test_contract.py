"""The OpenAPI document is the contract, and it cannot drift from the answers: every operation
documents a typed JSON body for each of its success answers, and a tour of real requests (a
licence, uploaded pairs, classifications, curation, revocation, erasure) calls every operation
once and checks each real answer against the schema the document gives for it. A new route
without a documented answer, or an answer with a field the schema does not name (or without
one it names), fails here."""

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.integration.api.conftest import Api
from tests.samples import process_job

CLASSES = ["cat", "dog", "ship", "truck"]


class Tour:
    """Calls the API as an admin, checks each answer against the document, notes the
    operation."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.client = api.client("admin")
        self.document = self.client.get("/openapi.json").json()
        self.visited: set[tuple[str, str]] = set()

    def call(self, method: str, template: str, expect: int, **kw: Any) -> Any:
        path = template.format(**kw.pop("path", {}))
        answer = self.client.request(method, path, **kw)
        assert answer.status_code == expect, f"{method} {path}: {answer.text}"
        schema = self.document["paths"][template][method.lower()]["responses"][str(expect)]
        body = answer.json()
        jsonschema.validate(
            body,
            {**schema["content"]["application/json"]["schema"], **self._components()},
            cls=jsonschema.Draft202012Validator,
        )
        self.visited.add((method.upper(), template))
        return body

    def _components(self) -> dict[str, Any]:
        return {"components": self.document.get("components", {})}

    def operations(self) -> set[tuple[str, str]]:
        return {
            (method.upper(), path)
            for path, item in self.document["paths"].items()
            for method in item
            if method in {"get", "post", "put", "patch", "delete"}
        }


def _pairs(shared_data: Path, n: int) -> list[tuple[str, bytes, str]]:
    """The first `n` real pairs of the default collection: (name, jpg bytes, caption)."""
    out = []
    with tarfile.open(shared_data / "tiny-imagenet-pairs-wds" / "00000.tar") as src:
        names = sorted(m for m in src.getnames() if m.endswith(".jpg"))[:n]
        for name in names:
            image = src.extractfile(name).read()  # type: ignore[union-attr]
            caption = src.extractfile(name[:-3] + "txt").read().decode()  # type: ignore[union-attr]
            out.append((name, image, caption.strip()))
    return out


def _cifar(shared_data: Path, label: str, n: int) -> list[tuple[str, bytes]]:
    files = sorted((shared_data / "cifar10" / "test" / label).iterdir())[:n]
    return [(f.name, f.read_bytes()) for f in files]


@pytest.fixture
def tour(api: Api) -> Iterator[Tour]:
    tour = Tour(api)
    yield tour
    tour.client.close()


def test_every_operation_documents_a_typed_answer(tour: Tour) -> None:
    untyped = []
    for path, item in tour.document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2"):
                    continue
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if not schema or not ({"$ref", "type", "items", "anyOf"} & set(schema)):
                    untyped.append(f"{method.upper()} {path} {status}: {schema}")
    assert not untyped, "\n".join(untyped)
    # Every named model is closed: an answer with an undocumented field is refused.
    open_models = [
        name
        for name, schema in tour.document["components"]["schemas"].items()
        if schema.get("type") == "object"
        and "properties" in schema
        and schema.get("additionalProperties", True) is not False
        and not name.startswith(("Body_", "HTTPValidationError", "ValidationError"))
        and name not in _REQUEST_MODELS
    ]
    assert not open_models, open_models


# Request bodies (what clients send) may stay open; answers may not.
_REQUEST_MODELS = {
    "LicenseCreate",
    "Revocation",
    "Restoration",
    "ErasureRequest",
    "Deletion",
    "LabelSetCreate",
    "FitRefresh",
    "DuplicateRefresh",
    "PairAction",
}


def test_a_tour_of_every_operation_matches_the_document(tour: Tour, shared_data: Path) -> None:
    assert tour.call("GET", "/health", 200)["ok"]
    licence = tour.call("POST", "/v1/licenses", 201, json={"name": "tour"})
    other = tour.call("POST", "/v1/licenses", 201, json={"name": "other"})
    uploaded = []
    for name, pairs in (
        ("tour", _pairs(shared_data, 12)[:8]),
        ("other", _pairs(shared_data, 12)[8:]),
    ):
        job = tour.call(
            "POST",
            "/v1/pairs",
            202,
            data={"captions": [c for _, _, c in pairs], "license": name},
            files=[("images", (n, image)) for n, image, _ in pairs],
        )
        process_job(tour.api.platform, job["job_id"])
        uploaded.append(job)
    report = tour.call("GET", "/v1/jobs/{job_id}", 200, path={"job_id": uploaded[0]["job_id"]})
    assert report["done"] == 8
    listed = tour.call("GET", "/v1/licenses", 200)
    assert {r["name"]: r["usable_pairs"] for r in listed} == {"tour": 8, "other": 4}
    tour.call("POST", "/v1/label-sets", 201, json={"name": "four", "classes": CLASSES})
    assert [s["name"] for s in tour.call("GET", "/v1/label-sets", 200)] == ["four"]

    cat = _cifar(shared_data, "cat", 1)[0]
    [answer] = tour.call(
        "POST", "/v1/classify", 200, data={"label_set": "four", "k": "5"}, files=[("images", cat)]
    )
    pair_id = answer["evidence"][0]["pair_id"]
    tour.call("GET", "/v1/pairs/{pair_id}", 200, path={"pair_id": pair_id})
    tour.call(
        "GET",
        "/v1/predictions/{prediction_id}",
        200,
        path={"prediction_id": answer["prediction_id"]},
    )
    tour.call(
        "POST",
        "/v1/retrieve",
        200,
        data={"direction": "image_to_text", "k": "5"},
        files=[("image", cat)],
    )
    tour.call("GET", "/v1/licenses/{license_id}/impact", 200, path={"license_id": licence["id"]})

    tour.call("POST", "/v1/curation/fit", 200, json={"k": 5})
    worst = tour.call("GET", "/v1/curation/mismatches", 200)
    tour.call("POST", "/v1/curation/duplicates", 200, json={})
    tour.call("GET", "/v1/curation/duplicates", 200)
    labelled = [(c, f) for c in ("cat", "ship") for f in _cifar(shared_data, c, 2)]
    tour.call(
        "POST",
        "/v1/curation/value",
        200,
        data={"classes": [c for c, _ in labelled], "k": "5"},
        files=[("images", f) for _, f in labelled],
    )
    chosen = [worst["items"][0]["pair_id"]]
    tour.call("POST", "/v1/curation/mark", 200, json={"pair_ids": chosen, "reason": "look"})
    tour.call("GET", "/v1/curation/reviews", 200)
    tour.call("POST", "/v1/curation/unmark", 200, json={"pair_ids": chosen})
    tour.call("POST", "/v1/curation/reject", 200, json={"pair_ids": chosen, "reason": "odd"})
    tour.call("POST", "/v1/curation/restore", 200, json={"pair_ids": chosen})
    [other_pair] = [r["pair_id"] for r in worst["items"] if r["license"] == "other"][:1]
    tour.call("DELETE", "/v1/pairs/{pair_id}", 200, path={"pair_id": other_pair})
    revoked = tour.call(
        "POST", "/v1/curation/revoke", 200, json={"pair_ids": chosen, "reason": "withdrawn"}
    )
    assert revoked["revoked"]
    ids = {r["name"]: r["id"] for r in listed}
    path = {"license_id": ids[revoked["revoked"][0]["license"]]}
    tour.call("POST", "/v1/licenses/{license_id}/restore", 200, path=path, json={})
    tour.call(
        "POST", "/v1/licenses/{license_id}/revoke", 200, path=path, json={"reason": "for good"}
    )
    preview = tour.call("GET", "/v1/licenses/{license_id}/erasure-preview", 200, path=path)
    tour.call(
        "POST",
        "/v1/licenses/{license_id}/erase",
        200,
        path=path,
        json={"reason": "consent withdrawn", "confirm": preview["license"]},
    )
    tour.call("GET", "/v1/licenses/{license_id}/erasure-report", 200, path=path)
    assert other["id"]

    missing = tour.operations() - tour.visited
    assert not missing, f"operations the tour does not call (add them): {sorted(missing)}"
