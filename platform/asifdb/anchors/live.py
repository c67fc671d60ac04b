"""The live model of one process: anchors synced to the database version, cached captions.

A query takes a `View` (anchors at one version, read in the query's own snapshot) and keeps it
to the end, so it sees one model from start to end even while a licence is revoked.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from sqlalchemy.orm import Session

from asifdb import engine
from asifdb.anchors import store
from asifdb.anchors.store import Anchors
from asifdb.encoders import Encoder
from asifdb.engine.ivf import IvfParams, IvfTopK

_MAX_CACHED_LABEL_SETS = 64


@dataclass(frozen=True)
class View:
    """The model at one version: its anchors and the positions of its usable rows."""

    anchors: Anchors
    rows: np.ndarray  # positions of the usable anchors, ascending

    @property
    def version(self) -> int:
        return self.anchors.version

    @property
    def pair_ids(self) -> np.ndarray:
        return self.anchors.ids[self.rows]

    def image_anchors(self) -> np.ndarray:
        return self.anchors.image[self.rows]

    def text_anchors(self) -> np.ndarray:
        return self.anchors.text[self.rows]

    def without(self, pair_ids: frozenset[int]) -> "View":
        """This view less some pairs: a what-if, never cached."""
        keep = ~np.isin(self.pair_ids, np.fromiter(pair_ids, dtype=np.int64))
        return View(self.anchors, self.rows[keep])


Modality = Literal["image", "text"]


class _Index:
    """One modality's exact index over the anchors' rows (shared, not copied), grown as pairs
    are appended; each search passes the view's usable rows, so views of different versions
    search the same index without changing it."""

    def __init__(self, modality: Modality, scan: torch.dtype) -> None:
        self._modality = modality
        self._scan = scan
        self._lock = threading.Lock()  # searches and growth; torch already uses every core
        self._index: engine.ExactTopK | None = None
        self._ids = np.empty(0, dtype=np.int64)  # keys stored, in storage order

    def search(self, view: View, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        anchors = view.anchors
        rows = getattr(anchors, self._modality)
        with self._lock:
            if not self._holds(anchors.ids):
                if self._index is not None and _starts_with(anchors.ids, self._ids):
                    self._index.add(anchors.ids[len(self._ids) :], rows[len(self._ids) :])
                else:
                    self._index = engine.ExactTopK.of_unit_rows(
                        rows, ids=anchors.ids, scan_dtype=self._scan
                    )
                self._ids = anchors.ids
            usable = np.zeros(len(self._ids), dtype=bool)
            usable[view.rows] = True
            assert self._index is not None
            return self._index.search(queries, k, usable=usable)

    def _holds(self, ids: np.ndarray) -> bool:
        """Whether every stored key of this (possibly older) view is where the index has it."""
        return len(ids) <= len(self._ids) and _starts_with(self._ids, ids)


@dataclass(frozen=True)
class IvfPolicy:
    """The inverted-lists path of the default model (Settings.ivf_*, docs/benchmarks-engine.md):
    `auto` takes it past `above` usable pairs (None: never); the lists are rebuilt when their
    imbalance passes `max_imbalance` times the built one or `max_unusable` of their rows are
    unusable (the search that finds it pays the build)."""

    above: int | None = None
    max_imbalance: float = 2.0
    max_unusable: float = 0.25
    params: IvfParams = IvfParams()


class _IvfIndex:
    """The image anchors' inverted lists over the anchors' rows, built on the first search,
    grown as pairs are appended, rebuilt over the usable rows when they drift (`IvfPolicy`);
    each search passes the view's usable rows, as `_Index` does. A pair left out by a rebuild
    (unusable then) is added back when a view has it usable again (a restored licence)."""

    def __init__(self, policy: IvfPolicy) -> None:
        self._policy = policy
        self._lock = threading.Lock()
        self._index: IvfTopK | None = None
        self._seen = np.empty(0, dtype=np.int64)  # the anchors' keys the index was synced to
        self._positions = np.empty(0, dtype=np.int64)  # anchor position of each stored row
        self._stored = np.empty(0, dtype=bool)  # per anchor position: in the index

    def search(self, view: View, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        anchors = view.anchors
        with self._lock:
            if self._index is None or not _same_lineage(anchors.ids, self._seen):
                self._build(anchors, np.arange(len(anchors.ids)))
            elif len(anchors.ids) > len(self._seen):
                self._seen = anchors.ids
                self._stored = np.concatenate(
                    [self._stored, np.zeros(len(anchors.ids) - len(self._stored), dtype=bool)]
                )
            missing = view.rows[~self._stored[view.rows]]
            if len(missing):
                self._add(anchors, missing)
            usable_positions = np.zeros(len(self._seen), dtype=bool)
            usable_positions[view.rows] = True
            usable = usable_positions[self._positions]
            policy = self._policy
            assert self._index is not None
            if self._index.needs_rebuild(
                usable, max_imbalance=policy.max_imbalance, max_unusable=policy.max_unusable
            ):
                self._build(anchors, view.rows)
                usable = np.ones(len(view.rows), dtype=bool)
            return self._index.search(queries, k, usable=usable)

    def _build(self, anchors: Anchors, positions: np.ndarray) -> None:
        """Fresh lists (trained anew) over the anchors at `positions`, ascending."""
        everything = len(positions) == len(anchors.ids)
        rows = anchors.image if everything else np.ascontiguousarray(anchors.image[positions])
        self._index = IvfTopK(rows, ids=anchors.ids[positions], params=self._policy.params)
        self._seen = anchors.ids
        self._positions = positions
        self._stored = np.zeros(len(anchors.ids), dtype=bool)
        self._stored[positions] = True

    def _add(self, anchors: Anchors, positions: np.ndarray) -> None:
        assert self._index is not None
        self._index.add(anchors.ids[positions], anchors.image[positions])
        self._positions = np.concatenate([self._positions, positions])
        self._stored[positions] = True


def _starts_with(longer: np.ndarray, prefix: np.ndarray) -> bool:
    return len(prefix) <= len(longer) and (
        longer is prefix or bool(np.array_equal(longer[: len(prefix)], prefix))
    )


def _same_lineage(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether one key array starts with the other (versions of one, never reloaded, Anchors)."""
    return _starts_with(a, b) or _starts_with(b, a)


ExactScan = Literal["float32", "bfloat16", "int8", "auto"]
# `auto`: searches of at most this many queries take the one-query scan (int8).
ONE_QUERY_AT_MOST = 4


def scan_dtypes(scan: ExactScan) -> tuple[torch.dtype, torch.dtype]:
    """(scan for one query, scan for a batch) of Settings.exact_scan.

    `auto` keeps two scan copies beside the float32 rows (docs/benchmarks-engine.md): int8
    (a quarter of the bytes: one query is a pass over memory) and, where the CPU multiplies
    bfloat16 in hardware, bfloat16 for batches (compute-bound); else float32 for batches.
    """
    if scan != "auto":
        dtype = getattr(torch, scan)
        return dtype, dtype
    return torch.int8, torch.bfloat16 if fast_bfloat16() else torch.float32


def fast_bfloat16() -> bool:
    """Whether this CPU has bfloat16 dot-product instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class LiveModel:
    """Anchors and caption representations, kept current with the database, thread-safe."""

    def __init__(
        self, scan: ExactScan = "float32", model: str | None = None, ivf: IvfPolicy | None = None
    ) -> None:
        """`scan`: how the exact top-k scans (Settings.exact_scan, `scan_dtypes`); results
        never depend on it. `model`: a named model's (services/models.py), else the
        default's. `ivf`: the inverted-lists path's policy (default: `IvfPolicy()`)."""
        self.model = model
        self.ivf = ivf or IvfPolicy()
        self._ivf = _IvfIndex(self.ivf)
        self._one_scan, self._scan = scan_dtypes(scan)
        self._lock = threading.Lock()
        self._anchors: Anchors | None = None
        self._rows: tuple[Anchors | None, np.ndarray] = (None, np.empty(0, dtype=np.int64))
        self._captions: OrderedDict[tuple, tuple[np.ndarray, engine.LiveCaptionReps]] = (
            OrderedDict()
        )
        self._caption_emb: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._indexes = {
            (m, dtype): _Index(m, dtype)
            for m in ("image", "text")
            for dtype in {self._one_scan, self._scan}
        }
        # Per label set: (representation by pair id, view rows, it re-keyed to those rows).
        self._positional: dict[tuple, tuple[engine.SparseRep, np.ndarray, engine.SparseRep]] = {}

    def _forget(self) -> None:
        """Drop every cache and index built from earlier anchors (lock held)."""
        self._rows = (None, np.empty(0, dtype=np.int64))
        self._captions.clear()
        self._caption_emb.clear()
        self._positional.clear()
        self._indexes = {key: _Index(*key) for key in self._indexes}
        self._ivf = _IvfIndex(self.ivf)

    @property
    def batch_scan(self) -> torch.dtype:
        """How searches of many queries scan (EXACT_SCAN): for indexes built beside it."""
        return self._scan

    def representation(
        self,
        view: View,
        modality: Modality,
        queries: np.ndarray,
        k: int,
        p: float,
        method: Literal["exact", "ivf"] = "exact",
    ) -> engine.SparseRep:
        """Relative representations of `queries` over the view's usable anchors of `modality`
        (exact top-k), indices are view positions: `relative_representation(queries,
        view.<modality>_anchors(), k, p)` without copying the anchors per query. `method`
        "ivf" (image only): the top-k from the inverted lists, exact similarities."""
        if method == "ivf":
            if modality != "image":
                raise ValueError("the inverted lists index the image anchors only")
            ids, sims = self._ivf.search(view, queries, k)
        else:
            scan = self._one_scan if len(queries) <= ONE_QUERY_AT_MOST else self._scan
            ids, sims = self._indexes[modality, scan].search(view, queries, k)
        return engine.reindex(
            engine.from_neighbours(ids, sims, p, int(view.rows.size)), view.pair_ids
        )

    def view(self, session: Session) -> View:
        """The model at the version `session` sees (call it first in a REPEATABLE READ txn)."""
        with self._lock:
            before = self._anchors
            self._anchors = store.sync(session, self._anchors, self.model)
            anchors = self._anchors
            if before is not None and (
                before.erasures != anchors.erasures or before.encoders != anchors.encoders
            ):
                # Erased pairs' rows and captions leave every cache too; after a switch of
                # encoders (same ids, other embeddings) no index or cache of the old ones stays.
                self._forget()
            if self._rows[0] is not anchors:  # one rows array per version: caches key on it
                self._rows = (anchors, anchors.usable_rows())
            return View(anchors, self._rows[1])

    def caption_embeddings(self, captions: tuple[str, ...], encoder: Encoder[str]) -> np.ndarray:
        """The text encoder's embeddings of a label set's captions, encoded once."""
        key = (encoder.name, captions)
        with self._lock:
            cached = self._caption_emb.get(key)
        if cached is None:
            cached = encoder.embed_batch(list(captions))
            with self._lock:
                self._caption_emb[key] = cached
                while len(self._caption_emb) > _MAX_CACHED_LABEL_SETS:
                    self._caption_emb.popitem(last=False)
        return cached

    def caption_reps(
        self, view: View, captions: tuple[str, ...], caption_emb: np.ndarray, k: int, p: float
    ) -> engine.SparseRep:
        """Relative representations of `captions` over the view's anchors, from the cache.

        Returned indices are view positions (as `representation`'s). The cache is updated with
        what changed since it was last used (added and removed pairs) and equals a
        recomputation from scratch; its re-keying to this view's positions (and the sort the
        scores join on) is kept until the model or the view's rows change.
        """
        key = (captions, k, p)
        with self._lock:
            by_ids = self._caption_reps_by_id(key, view, caption_emb, k, p)
            last = self._positional.get(key)
            if last is not None and last[0] is by_ids and last[1] is view.rows:
                return last[2]
            positional = engine.reindex(by_ids, view.pair_ids)
            self._positional[key] = (by_ids, view.rows, positional)
            return positional

    def _caption_reps_by_id(
        self, key: tuple, view: View, caption_emb: np.ndarray, k: int, p: float
    ) -> engine.SparseRep:
        """The cached representations (indices: pair ids), moved to `view` (lock held)."""
        cached = self._captions.get(key)
        if cached is None or not _same_lineage(view.anchors.ids, cached[0]):
            # New, or built on anchors since reloaded: rebuilt, so the old rows are freed.
            # The index shares the anchors' rows: a label set costs its candidates only.
            index = engine.ExactTopK.of_unit_rows(
                view.anchors.text, ids=view.anchors.ids, scan_dtype=self._scan
            )
            dead = np.setdiff1d(view.anchors.ids, view.pair_ids, assume_unique=True)
            if len(dead):
                index.revoke(dead)
            live = engine.LiveCaptionReps(caption_emb, k=k, p=p, index=index)
            self._captions[key] = (view.anchors.ids, live)
        else:
            live = cached[1]
            self._captions.move_to_end(key)
            live.update_to(view.pair_ids, lambda ids: _text_rows(view, ids))
        while len(self._captions) > _MAX_CACHED_LABEL_SETS:
            gone, _ = self._captions.popitem(last=False)
            self._positional.pop(gone, None)
        return live.representation()


def _text_rows(view: View, pair_ids: np.ndarray) -> np.ndarray:
    positions = np.array([view.anchors.position[int(i)] for i in pair_ids], dtype=np.int64)
    return view.anchors.text[positions]
