"""The pair collection as people browse and grow it: find pairs by caption, image or facets, the
pairs near an image and each candidate class, and stage an uploaded zip of class folders.
Called by the UI."""

import io
import shutil
import stat
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from sqlalchemy import case, column, func, literal, select, table
from sqlalchemy.orm import Session, aliased

from asifdb import engine
from asifdb.anchors.live import LiveModel
from asifdb.db.models import Job, License, Pair, PairEmbedding
from asifdb.errors import Conflict, InvalidInput, TooLarge
from asifdb.schemas.collection import CollectionPage, CollectionPair, Facets, Neighbour
from asifdb.services.classify import Options, check_images
from asifdb.services.labelsets import Candidates
from asifdb.services.model import Encoders, require_encoders
from asifdb.services.uploads import UploadLimits

STATUSES = ("usable", "licence revoked", "deleted", "pending", "rejected", "other encoders")
MAX_PAGE = 200
_LIMITS = UploadLimits()

_usable = table("usable_pairs", column("id"))
# A pair's one-word state; "usable" is exactly membership of the `usable_pairs` view.
_pair_state = case(
    (_usable.c.id.is_not(None), literal("usable")),
    (Pair.deleted_at.is_not(None), literal("deleted")),
    (Pair.status != "ready", Pair.status),
    (License.status != "active", literal("licence revoked")),
    else_=literal("other encoders"),
)
# Zip tools add these beside the real content; as class folders they would only make rejects.
_JUNK = ("__MACOSX", "Thumbs.db")


def facets(session: Session) -> Facets:
    """The values the collection can be filtered by: licences, collections, sources, statuses."""
    return Facets(
        licenses=list(session.scalars(select(License.name).order_by(License.name))),
        collections=list(
            session.scalars(select(Pair.collection).distinct().order_by(Pair.collection))
        ),
        sources=list(session.scalars(select(Job.source).distinct().order_by(Job.source))),
        statuses=list(STATUSES),
    )


def search(
    session: Session,
    *,
    caption: str | None = None,
    licence: str | None = None,
    collection: str | None = None,
    source: str | None = None,
    status: str | None = None,
    image: tuple[str, bytes] | None = None,
    encoders: Encoders | None = None,
    limit: int = 50,
    offset: int = 0,
) -> CollectionPage:
    """Pairs matching every filter given, newest first, or most similar first to `image`.

    `caption` matches a substring, case-insensitively; `source` is a job's source; `image`
    (a name and its bytes) ranks pairs by the cosine similarity of their image embeddings
    to its embedding by `encoders.image`, among pairs embedded by that same encoder.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit = {limit}: use 1 to {MAX_PAGE}")
    if offset < 0:
        raise InvalidInput(f"offset = {offset}: use 0 or more")
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    query = (
        select(
            Pair.id.label("pair_id"),
            Pair.caption,
            Pair.collection,
            Pair.blob_uri,
            Pair.source_uri,
            Pair.job_id,
            Pair.added_at,
            License.name.label("license"),
            _pair_state.label("state"),
        )
        .join(License, License.id == Pair.license_id)
        .outerjoin(_usable, _usable.c.id == Pair.id)
    )
    if caption and caption.strip():
        pattern = caption.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Pair.caption.ilike(f"%{pattern}%", escape="\\"))
    if licence:
        query = query.where(License.name == licence)
    if collection:
        query = query.where(Pair.collection == collection)
    if source:
        query = query.where(Pair.job_id.in_(select(Job.id).where(Job.source == source)))
    if status:
        query = query.where(_pair_state == status)
    if image is not None:
        if encoders is None:
            raise InvalidInput("an image search needs the image encoder")
        [valid] = check_images([image])
        embedding = encoders.image.embed_batch([valid.for_encoder])[0]
        found = aliased(PairEmbedding)
        distance = found.embedding.cosine_distance(embedding)
        query = (
            query.add_columns((1 - distance).label("similarity"))
            .join(found, found.pair_id == Pair.id)
            .where(found.encoder == encoders.image.name)
        )
        ordered = query.order_by(distance, Pair.id)
    else:
        ordered = query.order_by(Pair.id.desc())
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    rows = session.execute(ordered.limit(limit).offset(offset)).mappings()
    return CollectionPage(total=total or 0, pairs=[_row(r) for r in rows])


def _row(row: Any) -> CollectionPair:
    found = dict(row)
    found["status"] = found.pop("state")
    return CollectionPair(**found)


def blob_uris(session: Session, *, pair_ids: list[int]) -> dict[int, str | None]:
    """Where each pair's original image is kept (None once the pair is deleted)."""
    rows = session.execute(select(Pair.id, Pair.blob_uri).where(Pair.id.in_(pair_ids)))
    return {pair_id: uri for pair_id, uri in rows}


def neighbours(
    session: Session,
    *,
    live: LiveModel,
    encoders: Encoders,
    image: tuple[str, bytes],
    candidates: Candidates,
    options: Options,
    per_class: int = 25,
) -> list[Neighbour]:
    """For every candidate class, the pairs near both the image and the class's caption (those
    its score sums over), the `per_class` largest contributions: the paper's interpretability
    plot (Figure 7). In the transaction of the prediction it explains, it sees the same model.
    """
    [valid] = check_images([image])
    require_encoders(session, encoders)
    view = live.view(session)
    if view.rows.size == 0:
        raise Conflict("the model has no usable pairs: nothing is near anything")
    image_rep = live.representation(
        view, "image", encoders.image.embed_batch([valid.for_encoder]), options.k, options.p
    )
    captions = tuple(candidates.captions)
    caption_rep = live.caption_reps(
        view, captions, live.caption_embeddings(captions, encoders.text), options.k, options.p
    )
    caption_scores = engine.sparse_scores(image_rep, caption_rep)[0]
    n_templates = len(candidates.templates)
    found: list[tuple[str, engine.Contribution]] = []
    for index, label in enumerate(candidates.classes):
        rows = list(range(index * n_templates, (index + 1) * n_templates))
        if options.aggregation == "max":
            # As `classify` explains a class: by its best caption, or all of them (mean).
            rows = [rows[int(np.argmax(caption_scores[rows]))]]
        found += [(label, c) for c in engine.explain(image_rep, 0, caption_rep, rows)[:per_class]]
    ids = [int(view.pair_ids[c.anchor]) for _, c in found]
    described = {
        row.id: row
        for row in session.execute(
            select(Pair.id, Pair.caption, License.name)
            .join(License, License.id == Pair.license_id)
            .where(Pair.id.in_(ids))
        )
    }
    return [
        Neighbour(
            label=label,
            pair_id=pair_id,
            caption=described[pair_id].caption,
            license=described[pair_id].name,
            image_similarity=c.image_similarity,
            caption_similarity=c.caption_similarity,
            contribution=c.contribution,
        )
        for (label, c), pair_id in zip(found, ids, strict=True)
    ]


def stage_class_folders(
    *,
    uploads_dir: Path,
    archive: bytes,
    limits: UploadLimits = _LIMITS,
) -> Path:
    """Unpack a zip of class folders (`<class>/<image>`, optionally under one top folder) into
    a new folder of `uploads_dir`; return that folder, to ingest as class folders.

    Refused whole, with the reason: a file that is not a zip, a path that would land outside
    the folder, a link, a file outside a class folder, and archives past the upload limits.
    Bad images are not refused here: the job rejects them one by one.
    """
    try:
        zipped = zipfile.ZipFile(io.BytesIO(archive))
    except zipfile.BadZipFile:
        raise InvalidInput("the upload is not a zip archive: zip the class folders") from None
    members: list[zipfile.ZipInfo] = []
    paths: list[PurePosixPath] = []
    for info in zipped.infolist():
        path = _member_path(info)
        hidden = any(part.startswith(".") or part in _JUNK for part in path.parts)
        if not info.is_dir() and not hidden:
            members.append(info)
            paths.append(path)
    if not members:
        raise InvalidInput("the zip holds no files: put images in one folder per class")
    if len(members) > limits.max_files:
        raise TooLarge(f"{len(members)} files in the zip: at most {limits.max_files}")
    tops = {path.parts[0] for path in paths}
    if len(tops) == 1 and all(len(path.parts) > 2 for path in paths):
        paths = [PurePosixPath(*path.parts[1:]) for path in paths]
    for path in paths:
        if len(path.parts) != 2:
            raise InvalidInput(
                f"{path} is not in a class folder: the zip must hold <class>/<image> "
                "(optionally all under one top folder)"
            )
    folder = uploads_dir / uuid.uuid4().hex
    try:
        _unpack(zipped, members, paths, folder, limits)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _unpack(
    zipped: zipfile.ZipFile,
    members: list[zipfile.ZipInfo],
    paths: list[PurePosixPath],
    folder: Path,
    limits: UploadLimits,
) -> None:
    total = 0
    for info, path in zip(members, paths, strict=True):
        with zipped.open(info) as member:
            # The sizes a zip declares can lie; what is read is what counts.
            data = member.read(limits.max_file_bytes + 1)
        if len(data) > limits.max_file_bytes:
            raise TooLarge(f"{info.filename} is over {limits.max_file_bytes} bytes")
        total += len(data)
        if total > limits.max_total_bytes:
            raise TooLarge(f"the zip unpacks to over {limits.max_total_bytes} bytes")
        target = folder / path.parts[0] / path.parts[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    """The member's relative path, refused if it is absolute, climbs out, or is a link."""
    path = PurePosixPath(info.filename.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        raise InvalidInput(f"{info.filename!r} would land outside the upload: refused")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise InvalidInput(f"{info.filename!r} is a link: only files are accepted")
    return path
