"""The default text encoder on real captions: shape, dtype, norm, determinism, and captions of
one class nearer each other than captions of another."""

import numpy as np

from asifdb.encoders import Encoder


def test_embeddings_are_unit_float32_rows_of_384(
    text_encoder: Encoder, captions: list[str]
) -> None:
    embeddings = text_encoder.embed_batch(captions[:50])
    assert embeddings.shape == (50, 384)
    assert embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert np.max(embeddings[0] @ embeddings[1:].T) < 0.99


def test_same_captions_give_the_same_embeddings(text_encoder: Encoder, captions: list[str]) -> None:
    np.testing.assert_array_equal(
        text_encoder.embed_batch(captions[:30]), text_encoder.embed_batch(captions[:30])
    )


def test_a_caption_alone_embeds_as_in_a_batch(text_encoder: Encoder, captions: list[str]) -> None:
    # Padding to the longest caption of a batch must not change an embedding.
    alone = np.concatenate([text_encoder.embed_batch([c]) for c in captions[:5]])
    np.testing.assert_allclose(alone, text_encoder.embed_batch(captions[:5]), atol=1e-5)


def test_no_captions_give_an_empty_matrix(text_encoder: Encoder) -> None:
    assert text_encoder.embed_batch([]).shape == (0, 384)


def test_golden_embedding_of_a_caption(text_encoder: Encoder) -> None:
    embedding = text_encoder.embed_batch(["a photo of a goldfish"])[0]
    np.testing.assert_allclose(embedding[:6], GOLDEN_GOLDFISH, atol=2e-4)


def test_a_caption_is_nearer_a_caption_of_its_class(
    text_encoder: Encoder, captions: list[str], wnids: list[str]
) -> None:
    by_class: dict[str, list[str]] = {}
    for caption, wnid in zip(captions, wnids, strict=True):
        by_class.setdefault(wnid, []).append(caption)
    pairs = [(c[0], c[1]) for c in by_class.values() if len(c) >= 2]
    assert len(pairs) >= 10
    queries = text_encoder.embed_batch([q for q, _ in pairs])
    keys = text_encoder.embed_batch([k for _, k in pairs])
    # Each query against one caption of its own class and one of every other class present.
    nearest = (queries @ keys.T).argmax(axis=1)
    assert np.mean(nearest == np.arange(len(pairs))) >= 0.8


def test_one_known_triplet(text_encoder: Encoder) -> None:
    goldfish, goldfish_too, bus = text_encoder.embed_batch(
        ["a photo of a goldfish", "close-up of a goldfish, a small golden carp", "my school bus"]
    )
    assert goldfish @ goldfish_too > goldfish @ bus


GOLDEN_GOLDFISH = np.array([-0.036799, 0.076462, -0.019785, 0.002745, -0.020691, -0.049049])
