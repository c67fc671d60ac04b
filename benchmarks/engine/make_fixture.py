"""Regenerates tests/unit/engine/fixtures/real_embeddings.npz: real embeddings for engine tests.

300 Tiny-ImageNet anchor pairs, 40 validation images of 10 classes, 10 x 2 class captions,
encoded with the platform's default encoders and stored as float16 (about 1 MB).

    .venv/bin/python benchmarks/engine/make_fixture.py
"""

from pathlib import Path

from real_data import cached

FIXTURE = Path(__file__).resolve().parents[2] / "tests/unit/engine/fixtures/real_embeddings.npz"


def main() -> None:
    FIXTURE.unlink(missing_ok=True)
    data = cached(FIXTURE, n_pairs=300, classes=10, per_class=4)
    for name, array in data.items():
        print(f"{name:14s} {array.dtype}  {array.shape}")
    print(f"{FIXTURE} ({FIXTURE.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
