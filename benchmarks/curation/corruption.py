"""Curation on the 20,000-pair default collection: 5 % of captions swapped between random pairs
(under their own licence) found by the mismatch list; near-duplicates inserted and grouped;
harmful pairs found on half of CIFAR-10 test and rejected in a dry run, measured on the other half.

    flock /tmp/asifdb-bench.lock .venv/bin/python -m benchmarks.curation.corruption [--mismatch]

Writes benchmarks/curation/results/curation.json and docs/img/results-curation.png; with
`--mismatch`, only the swapped captions and their revocation (curation_mismatch.json).
"""

import io
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import text

from asifdb import engine
from asifdb.context import Platform
from asifdb.experiments import runner
from asifdb.experiments.anchors_db import ROOT, ROOTS, SHARED_DATA, ingest
from asifdb.schemas.curation import PairValues
from asifdb.services import curation, evaluation, licences, model
from asifdb.services.classify import Options

log = logging.getLogger("curation")
SWAPPED = "swapped-captions"
COPIES = "near-duplicate-copies"
FRACTION = 0.05
N_COPIED = 60
WHAT_IF = (0, 10, 25, 50, 100, 200, 400, 700, 1000)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of `scores` (higher = more likely positive), ties counted half."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2 + 1
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _swap(platform: Platform, seed: int = 0) -> dict:
    """Swap the captions (and their text embeddings) of random couples; move them to a licence."""
    with platform.sessions.begin() as session:
        lic = licences.create(session, name=SWAPPED, actor="benchmark")
        ids = list(session.execute(text("SELECT id FROM usable_pairs ORDER BY id")).scalars())
        rng = random.Random(seed)
        chosen = rng.sample(ids, int(FRACTION * len(ids)) // 2 * 2)
        a, b = chosen[0::2], chosen[1::2]
        session.execute(
            text(
                "CREATE TEMP TABLE swap ON COMMIT DROP AS "
                "SELECT unnest(CAST(:a AS bigint[])) AS x, "
                "unnest(CAST(:b AS bigint[])) AS y"
            ),
            {"a": a + b, "b": b + a},
        )
        same_class = session.execute(
            text(
                "SELECT count(*) FROM swap s JOIN pairs px ON px.id = s.x JOIN pairs py ON "
                "py.id = s.y WHERE px.source_metadata->>'wnid' = py.source_metadata->>'wnid'"
            )
        ).scalar_one()
        # The captions and their embeddings by the model's text encoder, swapped together.
        session.execute(
            text(
                "CREATE TEMP TABLE swapped ON COMMIT DROP AS "
                "SELECT s.x, q.caption, e.embedding FROM swap s JOIN pairs q ON q.id = s.y "
                "JOIN pair_embeddings e ON e.pair_id = q.id "
                "AND e.encoder = (SELECT text_encoder FROM model_state WHERE id = 1)"
            )
        )
        session.execute(
            text(
                "UPDATE pairs p SET caption = w.caption, license_id = :l "
                "FROM swapped w WHERE p.id = w.x"
            ),
            {"l": lic.id},
        )
        session.execute(
            text(
                "UPDATE pair_embeddings e SET embedding = w.embedding FROM swapped w "
                "WHERE e.pair_id = w.x "
                "AND e.encoder = (SELECT text_encoder FROM model_state WHERE id = 1)"
            )
        )
        model.change_usable(
            session, change=f"benchmark: captions swapped between {len(chosen)} pairs", always=True
        )
    return {"swapped": chosen, "same_class_swaps": int(same_class)}


def _mismatch(platform: Platform, swapped: list[int]) -> dict:
    started = time.perf_counter()
    with platform.sessions.begin() as session:
        refreshed = curation.refresh_fit(session, live=platform.live)
    seconds = time.perf_counter() - started
    with platform.sessions() as session:
        rows = session.execute(
            text("SELECT pair_id, fit, score, margin, rank FROM pair_fit ORDER BY fit")
        ).all()
        wnid = dict(session.execute(text("SELECT id, source_metadata->>'wnid' FROM pairs")).all())
    ids = np.array([r.pair_id for r in rows])
    positive = np.isin(ids, swapped)
    fit = np.array([r.fit for r in rows])
    score = np.array([r.score for r in rows])
    margin = np.array([r.margin for r in rows])
    top = positive[: len(swapped)].sum()
    missed = ids[len(swapped) :][positive[len(swapped) :]]
    return {
        "refresh": refreshed.model_dump(),
        "refresh_seconds": round(seconds, 1),
        "pairs": len(ids),
        "swapped": int(positive.sum()),
        "auc_fit": auc(-fit, positive),
        "auc_plain_loo_score": auc(-score, positive),
        "auc_margin": auc(-margin, positive),
        "precision_at_corruption": float(top / len(swapped)),
        "recall_at_corruption": float(top / positive.sum()),
        "missed": len(missed),
        "missed_examples": [int(i) for i in missed[:20]],
        "missed_wnids": [wnid.get(int(i)) for i in missed[:20]],
    }


def _after_revoke(platform: Platform, swapped: list[int]) -> dict:
    with platform.sessions.begin() as session:
        done = licences.revoke(
            session, licence=SWAPPED, reason="benchmark: captions swapped", actor="benchmark"
        )
    listed: list[int] = []
    with platform.sessions() as session:
        for offset in range(0, 2000, curation.MAX_PAGE):
            page = curation.mismatches(session, limit=curation.MAX_PAGE, offset=offset)
            listed += [r.pair_id for r in page.items]
    return {
        "revoked": done.model_dump(),
        "first_2000_listed": len(listed),
        "swapped_still_listed": int(np.isin(listed, swapped).sum()),
    }


def _variants(image: bytes) -> dict[str, bytes]:
    picture = Image.open(io.BytesIO(image)).convert("RGB")
    w, h = picture.size
    out = {}
    for name, edited, quality in (
        ("jpeg60", picture, 60),
        ("crop90", picture.crop((w // 20, h // 20, w - w // 20, h - h // 20)), 90),
        ("resize128", picture.resize((2 * w, 2 * h), Image.Resampling.BICUBIC), 90),
    ):
        buffer = io.BytesIO()
        edited.save(buffer, format="JPEG", quality=quality)
        out[name] = buffer.getvalue()
    return out


def _duplicates(platform: Platform) -> dict:
    blobs = platform.blobs
    with platform.sessions() as session:
        live = platform.live.view(session)
        originals = session.execute(
            text(
                "SELECT id, image_sha256, caption FROM usable_pairs ORDER BY md5(id::text) LIMIT :n"
            ),
            {"n": N_COPIED},
        ).all()
    image = live.image_anchors()
    # Nearest other image of every pair before any copy is inserted: the natural background.
    keys, sims = engine.ExactTopK(image).search(image, 2)
    nn = sims[:, 1]
    folder = ROOT / "curation-copies"
    made = {}
    for row in originals:
        target = folder / f"p{row.id}"
        target.mkdir(parents=True, exist_ok=True)
        for name, data in _variants(blobs.get(row.image_sha256)).items():
            (target / f"{name}.jpg").write_bytes(data)
            made[(row.id, name)] = data
    ingest(platform, folder, licence=COPIES, template="copy of {}", batch_size=256)
    with platform.sessions() as session:
        copies = session.execute(
            text(
                "SELECT p.id, p.source_key, o.image_embedding <=> p.image_embedding AS distance "
                "FROM usable_pairs p JOIN licenses l ON l.id = p.license_id "
                "JOIN usable_pairs o ON "
                "o.id = CAST(substr(split_part(p.source_key, '/', 1), 2) AS bigint) "
                "WHERE l.name = :l"
            ),
            {"l": COPIES},
        ).all()
    cos = {r.source_key.split("/")[1].split(".")[0]: [] for r in copies}
    for r in copies:
        cos[r.source_key.split("/")[1].split(".")[0]].append(1 - r.distance)
    threshold = curation.DUPLICATE_THRESHOLD
    with platform.sessions.begin() as session:
        found = curation.refresh_duplicates(session, live=platform.live, threshold=threshold)
        groups = dict(session.execute(text("SELECT pair_id, group_id FROM near_duplicates")).all())
    copy_of = {r.id: int(r.source_key.split("/")[0][1:]) for r in copies}
    joined = [
        groups.get(c) is not None and groups.get(c) == groups.get(o) for c, o in copy_of.items()
    ]
    with_copy = {groups[o] for o in copy_of.values() if o in groups}
    false_groups = len(set(groups.values()) - with_copy)
    return {
        "threshold": threshold,
        "nearest_other_cosine": {
            f"p{q}": float(np.percentile(nn, q)) for q in (50, 90, 99, 99.9, 100)
        },
        "pairs_with_a_neighbour_at_or_above_threshold": int((nn >= threshold).sum()),
        "copy_cosine": {
            name: {"min": float(min(v)), "median": float(np.median(v))} for name, v in cos.items()
        },
        "copies": len(copies),
        "recall": float(np.mean(joined)),
        "groups": found.groups,
        "false_groups": false_groups,
        "refresh_seconds": found.seconds,
    }


def _value(platform: Platform) -> PairValues:
    with platform.sessions() as session:
        return curation.pair_values(
            session,
            live=platform.live,
            encoders=platform.encoders,
            labelled=evaluation.read_folder(SHARED_DATA / "cifar10" / "test", roots=ROOTS),
            templates="cifar",
            options=Options(k=800, p=8.0),
            counts=WHAT_IF,
            top=10,
        )


def run_mismatch(platform: Platform) -> runner.Result:
    """Section 1 alone: swapped captions, the mismatch list, and its revocation."""
    swap = _swap(platform)
    result: runner.Result = {"same_class_swaps": swap["same_class_swaps"]}
    result["mismatch"] = _mismatch(platform, swap["swapped"])
    log.info("mismatch %s", {k: v for k, v in result["mismatch"].items() if "auc" in k})
    result["revoke"] = _after_revoke(platform, swap["swapped"])
    return result


def run(platform: Platform) -> runner.Result:
    swap = _swap(platform)
    result: runner.Result = {"same_class_swaps": swap["same_class_swaps"]}
    result["mismatch"] = _mismatch(platform, swap["swapped"])
    log.info("mismatch %s", {k: v for k, v in result["mismatch"].items() if "auc" in k})
    value = _value(platform).model_dump()
    value["harmful_swapped"] = int(np.isin(value.pop("harmful_ids")[:200], swap["swapped"]).sum())
    result["value"] = value
    log.info("what if %s", value["what_if"])
    result["revoke"] = _after_revoke(platform, swap["swapped"])
    result["duplicates"] = _duplicates(platform)
    return result


def plot(result: runner.Result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["value"]["what_if"]
    n = [row["excluded"] for row in curve]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(n, [100 * row["accuracy_found_on"] for row in curve], "o-", label="half found on")
    ax.plot(n, [100 * row["accuracy_held_out"] for row in curve], "s-", label="held-out half")
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("most harmful pairs excluded (found on the first half)")
    ax.set_ylabel("CIFAR-10 top-1 accuracy (%)")
    ax.set_title("Corrupted 20k collection: excluding harmful pairs (dry run)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    if "--mismatch" in sys.argv[1:]:
        runner.main("curation_mismatch", run_mismatch, area="curation")
    else:
        runner.main("curation", run, plot, area="curation")
