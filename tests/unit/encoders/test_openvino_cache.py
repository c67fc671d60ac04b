"""The OpenVINO build kept in the cache folder: reused by the next process, and rebuilt when it
no longer agrees with torch (a corrupted or stale file never changes an embedding)."""

import logging
from pathlib import Path

import numpy as np
import pytest

from asifdb.encoders import Encoder, get_encoder


def test_a_corrupted_cached_build_is_detected_and_rebuilt(
    tmp_path: Path,
    jpegs: list[bytes],
    torch_image_encoder: Encoder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    get_encoder("tf_efficientnet_lite0", cache_dir=tmp_path).embed_batch(jpegs[:1])
    (weights,) = tmp_path.glob("*/model.bin")
    data = bytearray(weights.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 4096] = bytes(4096)
    weights.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING):
        embeddings = get_encoder("tf_efficientnet_lite0", cache_dir=tmp_path).embed_batch(
            jpegs[:16]
        )
    assert "disagrees with torch" in caplog.text
    reference = torch_image_encoder.embed_batch(jpegs[:16])
    assert np.min(np.sum(embeddings * reference, axis=1)) >= 0.99999
    assert weights.read_bytes() != bytes(data), "the cache now holds the rebuilt model"
