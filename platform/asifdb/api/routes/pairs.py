"""`/v1/pairs` and `/v1/jobs`: upload pairs (a job), follow a job, read or delete a pair."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel, Field

from asifdb.api.deps import LimitsDep, PlatformDep, SessionDep, allowed
from asifdb.api.params import NON_BLANK, Id
from asifdb.blobs import BlobStore
from asifdb.schemas.pairs import Job, JobAccepted, Pair, PairDeleted
from asifdb.services import ingestion, pairs, submit, uploads
from asifdb.services.keys import Principal
from asifdb.services.uploads import UploadLimits

router = APIRouter(tags=["pairs"])


class Deletion(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


@router.post("/v1/pairs", status_code=202, summary="Upload image-caption pairs as a job")
def upload_pairs(
    platform: PlatformDep,
    limits: LimitsDep,
    who: Annotated[Principal, Depends(allowed("pairs:add"))],
    images: Annotated[
        list[UploadFile], File(min_length=1, description="The images, one per caption.")
    ],
    captions: Annotated[
        list[str], Form(min_length=1, description="One caption per image, in order.")
    ],
    license: Annotated[
        str,
        Form(min_length=1, max_length=200, pattern=NON_BLANK, description="The licence, by name."),
    ],
    collection: Annotated[str, Form(max_length=200)] = "default",
) -> JobAccepted:
    limits.check_texts("captions", captions)
    files = limits.read_images(images, field="images", most="upload_files")
    staged = uploads.stage(
        uploads_dir=platform.settings.data_dir / "uploads",
        files=files,
        captions=captions,
        actor=who.name,
        limits=UploadLimits(
            max_files=limits.upload_files,
            max_file_bytes=limits.image_bytes,
            max_total_bytes=limits.upload_bytes,
        ),
    )
    return submit.ingestion_job(
        platform,
        source=staged,
        roots=[platform.settings.data_dir / "uploads"],
        kind="jsonl",
        license_name=license,
        actor=who.name,
        collection=collection,
    ).accepted()


@router.get(
    "/v1/jobs/{job_id}", summary="A job's progress and its rejected items", response_model=Job
)
def get_job(
    job_id: Id, session: SessionDep, _: Annotated[Principal, Depends(allowed("jobs:read"))]
) -> Job:
    return ingestion.job_report(session, job_id=job_id)


@router.get(
    "/v1/pairs/{pair_id}", summary="A pair with its provenance and licence", response_model=Pair
)
def get_pair(
    pair_id: Id, session: SessionDep, _: Annotated[Principal, Depends(allowed("pairs:read"))]
) -> Pair:
    return pairs.get(session, pair_id=pair_id)


@router.delete("/v1/pairs/{pair_id}", summary="Delete a pair: it leaves the model at once")
def delete_pair(
    pair_id: Id,
    platform: PlatformDep,
    who: Annotated[Principal, Depends(allowed("pairs:delete"))],
    body: Deletion | None = None,
) -> PairDeleted:
    with platform.sessions.begin() as session:
        blob = pairs.delete(
            session, pair_id=pair_id, actor=who.name, reason=body.reason if body else None
        )
    pairs.remove_blob(platform.sessions, BlobStore(platform.settings.blob_dir), blob)
    return PairDeleted(id=pair_id, deleted=True)
