"""Zero-shot classification through the live model, recorded with the pairs that carried it.

One REPEATABLE READ transaction per call: the model version, the anchors and the recorded
prediction all belong to one snapshot, so a concurrent revocation is seen entirely or not at all.
"""

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from asifdb import engine
from asifdb.anchors import ann_index
from asifdb.anchors.ann import HnswTopK
from asifdb.anchors.live import LiveModel, View
from asifdb.blobs import BlobStore
from asifdb.db.models import License, Pair
from asifdb.db.session import snapshot
from asifdb.errors import Conflict, InvalidInput
from asifdb.ingest import DEFAULT_LIMITS, Limits, SourceItem, ValidItem, validate
from asifdb.schemas.predictions import Classification, EvidencePair
from asifdb.services import blob_refs, models, predictions
from asifdb.services.labelsets import Candidates
from asifdb.services.model import Encoders
from asifdb.services.predictions import Evidence
from asifdb.settings import Settings

if TYPE_CHECKING:
    from asifdb.services.models import ModelRef

MAX_IMAGES = 64
# Past this many usable pairs `auto` uses HNSW: below it the exact scan is faster at full
# agreement, while HNSW (m = 16) stays under 98 % top-1 agreement (docs/benchmarks-ann.md).
AUTO_ANN_ABOVE = 1_000_000
EVIDENCE_SHOWN = 10
# The bounds of ASIF's k (anchors kept per representation) and p (the exponent), the one
# place every adapter takes them from (API forms, CLI options, UI inputs).
K_RANGE = (1, 10_000)
P_RANGE = (1.0, 64.0)


@dataclass(frozen=True)
class Options:
    """How to classify: ASIF's k and p, how templates combine, and which top-k path."""

    k: int = 800
    p: float = 8.0
    aggregation: Literal["max", "mean"] = "max"
    method: Literal["exact", "ann", "ivf", "auto"] = "auto"
    exclude_pairs: frozenset[int] = field(default_factory=frozenset)
    # Which of k and p the request left to the model ("k", "p"): the query takes them from
    # the model as its own snapshot has it (`following`), not as it was read before.
    from_model: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        settings: Settings,
        *,
        k: int | None = None,
        p: float | None = None,
        aggregation: str = "max",
        method: str = "auto",
        model: "ModelRef | None" = None,
    ) -> "Options":
        """The options a request asks for; where it gives no k or p, the named model's (else
        the settings' K and P); checked."""
        base_k, base_p = (settings.k, settings.p) if model is None else (model.k, model.p)
        options = cls(
            k=base_k if k is None else k,
            p=base_p if p is None else p,
            aggregation=aggregation,  # type: ignore[arg-type]
            method=method,  # type: ignore[arg-type]
            from_model=frozenset(n for n, v in (("k", k), ("p", p)) if v is None),
        )
        options.check()
        return options

    def following(self, model: "models.Definition") -> "Options":
        """These options with the k and p the request left to the model taken from `model`,
        its definition in the query's snapshot (where it sets them: the default model's are
        the settings' until a named model is made the default)."""
        k = model.k if "k" in self.from_model and model.k is not None else self.k
        p = model.p if "p" in self.from_model and model.p is not None else self.p
        return replace(self, k=k, p=p)

    def check(self) -> None:
        if not K_RANGE[0] <= self.k <= K_RANGE[1]:
            raise InvalidInput(f"k = {self.k}: use {K_RANGE[0]} to {K_RANGE[1]}")
        if not P_RANGE[0] <= self.p <= P_RANGE[1]:
            raise InvalidInput(
                f"p = {self.p}: use a value in [{P_RANGE[0]:g}, {P_RANGE[1]:g}] "
                "(the paper's p >= 1)"
            )
        if self.aggregation not in ("max", "mean"):
            raise InvalidInput(f"aggregation {self.aggregation!r}: use 'max' or 'mean'")
        if self.method not in ("exact", "ann", "ivf", "auto"):
            raise InvalidInput(f"method {self.method!r}: use 'exact', 'ann', 'ivf' or 'auto'")


def check_images(
    images: list[tuple[str, bytes]],
    limits: Limits = DEFAULT_LIMITS,
    max_images: int = MAX_IMAGES,
) -> list[ValidItem]:
    """Each image must decode; the first that does not is a clear error naming it."""
    if not images:
        raise InvalidInput("no image: send at least one")
    if len(images) > max_images:
        raise InvalidInput(f"{len(images)} images in one request: at most {max_images}")
    valid = []
    for name, data in images:
        result = validate(SourceItem(name, data, "query", name), limits)
        if not isinstance(result, ValidItem):
            raise InvalidInput(f"{name}: {result.reason.message}")
        valid.append(result)
    return valid


def top_k_method(
    session: Session,
    options: Options,
    view: View,
    live_model: str | None = None,
    *,
    ivf_above: int | None = None,
) -> str:
    """`auto` is the exact scan up to `ivf_above` usable pairs (the live model's
    IvfPolicy.above), the inverted lists beyond, else HNSW past AUTO_ANN_ABOVE where its index
    is built; `ann` without the index is a Conflict naming the fix. The approximate paths are
    the default model's. A dry run without some pairs (`exclude_pairs`) is always exact."""
    if options.method == "exact" or options.exclude_pairs:
        return "exact"
    if options.method in ("ann", "ivf") and live_model is not None:
        raise Conflict(
            f"model {live_model!r}: the approximate index covers the default model only "
            "(use method 'exact' or 'auto')"
        )
    if live_model is not None:
        return "exact"
    if options.method in ("ann", "ivf"):
        if options.method == "ann":
            ann_index.require_ready(session)
        return options.method
    if ivf_above is not None and view.rows.size > ivf_above:
        return "ivf"
    if view.rows.size > AUTO_ANN_ABOVE and ann_index.is_ready(session):
        return "ann"
    return "exact"


def image_reps(
    session: Session,
    live: LiveModel,
    view: View,
    image_emb: np.ndarray,
    options: Options,
    method: str,
) -> engine.SparseRep:
    """Image relative representations over the view's anchors, indices are view positions."""
    if method in ("exact", "ivf"):
        return live.representation(
            view,
            "image",
            image_emb,
            options.k,
            options.p,
            method=method,  # type: ignore[arg-type]
        )
    ids, sims = HnswTopK(session, "image").search(engine.normalise(image_emb), options.k)
    neighbours = engine.from_neighbours(ids, sims, options.p, int(view.rows.size))
    return engine.reindex(neighbours, view.pair_ids)


def classify(
    session: Session,
    *,
    live: LiveModel,
    encoders: Encoders,
    images: list[tuple[str, bytes]],
    candidates: Candidates,
    options: Options | None = None,
    client: str | None,
    channel: str,
    blobs: BlobStore | None = None,
    record: bool = True,
    evidence_limit: int | None = None,
) -> list[Classification]:
    """Classify each image among the candidate classes; record it (unless a dry run).

    Every pair that contributed is recorded as evidence, or the `evidence_limit` largest
    contributions (bulk evaluations); the result lists the top ones with captions.
    """
    options = options or Options()
    options.check()
    valid = check_images(images)
    snapshot(session)
    definition = models.require(session, live.model, encoders)
    options = options.following(definition)
    model_name = definition.name
    view = live.view(session)
    if options.exclude_pairs:
        view = view.without(options.exclude_pairs)
    if view.rows.size == 0:
        raise Conflict(
            "the model has no usable pairs: add pairs (asifdb ingest) or restore a licence"
        )
    captions = tuple(candidates.captions)
    image_emb = encoders.image.embed_batch([v.for_encoder for v in valid])
    caption_emb = live.caption_embeddings(captions, encoders.text)
    method = top_k_method(session, options, view, live.model, ivf_above=live.ivf.above)
    image_rep = image_reps(session, live, view, image_emb, options, method)
    if options.exclude_pairs:
        caption_rep = live.representation(view, "text", caption_emb, options.k, options.p)
    else:
        caption_rep = live.caption_reps(view, captions, caption_emb, options.k, options.p)
    caption_scores = engine.sparse_scores(image_rep, caption_rep)
    n_classes, n_templates = len(candidates.classes), len(candidates.templates)
    per_class = engine.class_scores(caption_scores, n_classes, n_templates, options.aggregation)
    results = []
    for i, item in enumerate(valid):
        best = int(np.argmax(per_class[i]))
        label = candidates.classes[best]
        rows = list(range(best * n_templates, (best + 1) * n_templates))
        if options.aggregation == "max":
            rows = [rows[int(np.argmax(caption_scores[i, rows]))]]
        contributions = engine.explain(image_rep, i, caption_rep, rows)
        pair_ids = view.pair_ids
        evidence = [
            Evidence(
                int(pair_ids[c.anchor]),
                label,
                c.image_similarity,
                c.caption_similarity,
                c.contribution,
            )
            for c in contributions
        ]
        result = {
            "label": label,
            "score": float(per_class[i, best]),
            "scores": {c: float(s) for c, s in zip(candidates.classes, per_class[i], strict=True)},
            "aggregation": options.aggregation,
            "caption": captions[rows[0]] if options.aggregation == "max" else None,
        }
        prediction_id = None
        if record:
            if blobs is not None:
                blob_refs.hold(session, [item.sha256])  # no removal of it races this record
                blobs.put(item.image_bytes, sha256=item.sha256)
            prediction_id = predictions.record(
                session,
                evidence=evidence[:evidence_limit],
                task="classify",
                input_sha256=item.sha256,
                input_name=item.key,
                candidates={
                    "classes": list(candidates.classes),
                    "templates": list(candidates.templates),
                    "label_set": candidates.name,
                },
                label_set_id=candidates.label_set_id,
                result=result,
                predicted_label=label,
                score=result["score"],
                model=model_name,
                model_version=view.version,
                image_encoder=encoders.image.name,
                text_encoder=encoders.text.name,
                k=options.k,
                p=options.p,
                aggregation=options.aggregation,
                topk_method=method,
                client=client,
                channel=channel,
            )
        results.append(
            Classification(
                **result,
                prediction_id=prediction_id,
                input=item.key,
                input_sha256=item.sha256,
                model=model_name,
                model_version=view.version,
                k=options.k,
                p=options.p,
                method=method,
                usable_pairs=int(view.rows.size),
                evidence_pairs=len(evidence),
                evidence=_evidence_rows(session, evidence[:EVIDENCE_SHOWN]),
            )
        )
    return results


def _evidence_rows(session: Session, evidence: list[Evidence]) -> list[EvidencePair]:
    """The evidence a caller sees: each pair with its caption and licence."""
    ids = [e.pair_id for e in evidence]
    pairs = {
        row.id: row
        for row in session.execute(
            select(Pair.id, Pair.caption, Pair.license_id, License.name)
            .join(License, License.id == Pair.license_id)
            .where(Pair.id.in_(ids))
        )
    }
    return [
        EvidencePair(
            pair_id=e.pair_id,
            caption=pairs[e.pair_id].caption,
            license_id=pairs[e.pair_id].license_id,
            license=pairs[e.pair_id].name,
            image_similarity=e.image_similarity,
            caption_similarity=e.caption_similarity,
            contribution=e.contribution,
        )
        for e in evidence
    ]
