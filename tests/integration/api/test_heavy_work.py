"""A heavy classification (the most captions a request may encode) runs off the event loop:
/health keeps answering at once on the same real server while it computes."""

import threading
import time
from pathlib import Path

import httpx

from tests.integration.api.conftest import Api
from tests.samples import ingest_now, tiny_shard

# Within the defaults: 1000 labels x 2 templates = 2000 captions (API_MAX_CAPTIONS), each new
# to the caption cache, so the request encodes all of them.
LABELS = [f"a kind of thing number {i}" for i in range(1000)]
TEMPLATES = ["a photo of {}.", "a picture of {}."]
# /health does a few database queries: on a busy 2-core machine well under this.
HEALTH_AT_MOST_S = 1.0


def test_a_heavy_classify_does_not_stall_health(
    api: Api, tmp_path: Path, shared_data: Path
) -> None:
    ingest_now(api.platform, tiny_shard(shared_data, tmp_path / "wds", 100), "tiny", batch_size=128)
    image = sorted((shared_data / "cifar10" / "test" / "ship").iterdir())[0]
    outcome: dict[str, object] = {}

    def heavy() -> None:
        started = time.monotonic()
        with api.client("app") as client:
            response = client.post(
                "/v1/classify",
                files=[("images", (image.name, image.read_bytes()))],
                data={"labels": LABELS, "template": TEMPLATES, "k": "50"},
            )
        outcome["status"] = response.status_code
        outcome["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=heavy)
    worker.start()
    time.sleep(0.3)  # let the request reach its encoding
    latencies = []
    with httpx.Client(base_url=api.url, timeout=120) as client:
        while worker.is_alive():
            started = time.monotonic()
            assert client.get("/health").status_code == 200
            latencies.append(time.monotonic() - started)
            time.sleep(0.1)
    worker.join()
    assert outcome["status"] == 200
    assert outcome["seconds"] > 2, "not heavy enough to show a stall"
    assert len(latencies) >= 5
    assert max(latencies) < HEALTH_AT_MOST_S, (
        f"/health took up to {max(latencies):.2f} s while a {outcome['seconds']:.1f} s "
        "classification ran"
    )
