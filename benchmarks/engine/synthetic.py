"""Clustered synthetic embeddings for the engine benchmarks, generated chunk by chunk.

Two-level clusters (topics, then 50-anchor clusters) so a query's top 800 sit among related
clusters, as with real embeddings, not in noise. Same seed, same rows, in any chunking.
"""

from collections.abc import Iterator

import torch

CLUSTER_SIZE = 50
TOPICS = 200
_CHUNK = 65_536


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=1, keepdim=True)


def _centres(n_clusters: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    topics = _unit(torch.randn(TOPICS, d, generator=g))
    topic_of = torch.randint(0, TOPICS, (n_clusters,), generator=g)
    return _unit(topics[topic_of] + 0.8 * _unit(torch.randn(n_clusters, d, generator=g)))


def chunks(n: int, d: int, *, seed: int, clusters: int | None = None) -> Iterator[torch.Tensor]:
    """n rows (d,) float32 unit vectors in chunks of 65,536; `clusters` defaults to n / 50.

    Row i belongs to cluster (i * 7919) % clusters, so rows of one cluster are spread over
    the matrix, as in a crawl.
    """
    n_clusters = clusters or max(1, n // CLUSTER_SIZE)
    centres = _centres(n_clusters, d, seed=1234)
    for start in range(0, n, _CHUNK):
        rows = torch.arange(start, min(n, start + _CHUNK))
        g = torch.Generator().manual_seed(seed * 1_000_003 + start)
        noise = _unit(torch.randn(len(rows), d, generator=g))
        yield _unit(centres[(rows * 7919) % n_clusters] + 0.7 * noise)


def matrix(n: int, d: int, *, seed: int, clusters: int | None = None) -> torch.Tensor:
    """All `chunks` as one (n, d) float32 tensor."""
    out = torch.empty((n, d))
    start = 0
    for block in chunks(n, d, seed=seed, clusters=clusters):
        out[start : start + len(block)] = block
        start += len(block)
    return out
