"""Platform settings from the environment and `.env`; adapters build one and pass it down."""

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator may set. Unset `DATABASE_URL` means the embedded PostgreSQL."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a PostgreSQL with pgvector; unset: embedded server.",
    )
    admin_database_url: str | None = Field(
        default=None,
        description=(
            "Set-up connection (migrations, index builds): a superuser or a CREATEROLE role. "
            "Unset: DATABASE_URL, or the embedded server's superuser."
        ),
    )
    auditor_database_url: str | None = Field(
        default=None,
        description=(
            "`asifdb sql` connects here, as asifdb_auditor. Unset: DATABASE_URL's server "
            "with the user asifdb_auditor (and AUDITOR_DB_PASSWORD)."
        ),
    )
    app_db_password: SecretStr | None = Field(
        default=None, description="Password `asifdb db upgrade` gives asifdb_app (external DB)."
    )
    auditor_db_password: SecretStr | None = Field(
        default=None, description="Password of asifdb_auditor (set by `db upgrade`, used by sql)."
    )
    redis_url: str | None = Field(
        default=None, description="Celery broker; unset: the embedded PostgreSQL is the broker."
    )
    data_dir: Path = Field(
        default=Path(".asifdb"),
        description="Embedded database, blob store and caches live here.",
    )
    server_data_dir: Path | None = Field(
        default=None,
        description=(
            "The PostgreSQL server's data folder, where this machine can read it: an "
            "erasure's report then searches the table files for the erased bytes. Unset: the "
            "embedded server's (when DATABASE_URL is unset), else none (the report shows what "
            "the server can: the tables rewritten into new files)."
        ),
    )
    image_encoder: str = "tf_efficientnet_lite0"
    text_encoder: str = "all-MiniLM-L6-v2"
    k: int = Field(default=800, ge=1, description="Anchors kept per relative representation.")
    p: float = Field(default=8.0, ge=1, description="Exponent applied to the kept similarities.")
    exact_scan: Literal["float32", "bfloat16", "int8", "auto"] = Field(
        default="float32",
        description=(
            "How the exact top-k scans the anchors before its float32 rerank: the results are "
            "float32's exactly in every case, only the speed differs by CPU and collection "
            "size (docs/benchmarks-engine.md): bfloat16 needs AVX512-BF16 or AMX, int8 pays "
            "for single queries and for large collections; auto keeps an int8 copy for single "
            "queries and a bfloat16 one (where the CPU has it) for batches."
        ),
    )
    ivf_above: int | None = Field(
        default=None,
        ge=0,
        description=(
            "method=auto takes the inverted-lists top-k (method=ivf) past this many usable "
            "pairs of the default model. Unset: never (at k = 800 it stays under 99 % top-1 "
            "agreement with the exact scan on real-distribution anchors up to 1M pairs: "
            "docs/benchmarks-engine.md); method=ivf can still be asked for."
        ),
    )
    ivf_coding: Literal["flat", "pq"] = Field(
        default="pq",
        description="What the inverted lists store per anchor for the shortlist: PQ codes or "
        "float32 rows (the exact rerank reads the anchors' own rows either way).",
    )
    ivf_nprobe: int = Field(
        default=32, ge=1, description="Lists probed per query before any widening."
    )
    ivf_max_imbalance: float = Field(
        default=2.0,
        gt=1,
        description="The lists are rebuilt when the largest over the mean list size passes "
        "this many times what it was at the build (pairs added far from the centroids).",
    )
    ivf_max_unusable: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        description="The lists are rebuilt over the usable pairs when more than this share "
        "of their rows is revoked or deleted (scans skip them; probes widen).",
    )
    recovery_stale_after_s: float = Field(
        default=600, gt=0, description="A batch sent this long ago and still undone is resent."
    )
    recovery_interval_s: float = Field(default=60, gt=0, description="How often workers look.")
    ingest_max_attempts: int = Field(
        default=4,
        ge=1,
        le=20,
        description=(
            "Tries of an ingestion batch that fails on its data (not on a lost connection, which "
            "is retried until the database is back) before it ends failed and its job partial."
        ),
    )
    ingest_retry_backoff_s: float = Field(
        default=5,
        gt=0,
        le=600,
        description="Wait before a failed batch's second try; doubled at each further try.",
    )
    eval_folder: Path | None = Field(
        default=None,
        description="A labelled folder (one sub-folder a class) for the Model page's check.",
    )
    eval_classnames: Path | None = Field(
        default=None, description="Its class names (`folder<TAB>name` lines), if not folders."
    )
    eval_templates: str = Field(default="default", description="Template set name or file.")
    eval_limit_per_class: int = Field(default=10, ge=1, description="Images a class checked.")
    # Server folders (asifdb/ingest/roots.py, local_files.py; why each default, in
    # docs/operations.md). API routes and UI actions take uploads, never a server path.
    source_roots: list[Path] = Field(
        default=[Path("../shared/data")],
        description=(
            "The only server folders an operator's command may read (asifdb ingest, eval, "
            "curate value; EVAL_FOLDER), as a JSON list, e.g. '[\"/srv/asifdb/data\"]'; a "
            "relative one is taken from the working folder. Default: the README's datasets "
            "folder beside the checkout."
        ),
    )
    source_max_image_bytes: int = Field(
        default=32 << 20, ge=1, description="An image file a worker reads from a source."
    )
    source_max_text_bytes: int = Field(
        default=1 << 20, ge=1, description="A caption or metadata file (or member), a JSONL line."
    )
    max_value_images: int = Field(
        default=5_000, ge=2, description="Images one pair-value request may encode, at most."
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ui_port: int = 8501

    # What one API request may send and ask for (asifdb/limits.py, api/boundary.py); why each
    # default, in docs/api.md. Bytes are refused with 413 while the body streams.
    api_max_json_bytes: int = Field(default=1 << 20, ge=1, description="A JSON body's bytes.")
    api_max_classify_bytes: int = Field(
        default=64 << 20, ge=1, description="A /v1/classify body's bytes (images and fields)."
    )
    api_max_retrieve_bytes: int = Field(
        default=64 << 20, ge=1, description="A /v1/retrieve body's bytes (images and fields)."
    )
    api_max_upload_bytes: int = Field(
        default=256 << 20, ge=1, description="A /v1/pairs upload's bytes, all files together."
    )
    api_max_upload_files: int = Field(default=1000, ge=1, description="Images per upload.")
    api_max_image_bytes: int = Field(default=20 << 20, ge=1, description="One image's bytes.")
    api_max_images: int = Field(default=64, ge=1, le=64, description="Images per classify.")
    api_max_candidate_images: int = Field(
        default=32, ge=1, description="Candidate images per retrieval."
    )
    api_max_candidate_texts: int = Field(
        default=1000, ge=1, le=1000, description="Candidate texts per retrieval."
    )
    api_max_text_chars: int = Field(
        default=2000, ge=1, description="One query text, candidate text or caption."
    )
    api_max_labels: int = Field(default=1000, ge=2, le=1000, description="Labels per request.")
    api_max_templates: int = Field(default=100, ge=1, le=100, description="Templates a request.")
    api_max_template_chars: int = Field(default=500, ge=3, description="One template's length.")
    api_max_captions: int = Field(
        default=2000, ge=2, description="Labels x templates: the captions one request encodes."
    )
    api_heavy_concurrency: int = Field(
        default=4, ge=1, description="Classify/retrieve/impact requests computed at once."
    )
    api_rate_limit: str = Field(
        default="600/minute", description="Requests per key (`limits` notation, moving window)."
    )
    api_auth_failure_limit: str = Field(
        default="30/minute", description="Requests with a missing or wrong key, per address."
    )
    api_anonymous_rate_limit: str = Field(
        default="300/minute", description="Keyless /health and /docs requests, per address."
    )
    api_rate_limit_storage: str = Field(
        default="memory://",
        description="Where the counters live: memory:// (one process) or redis://host/db.",
    )

    @field_validator(
        "database_url",
        "admin_database_url",
        "auditor_database_url",
        "app_db_password",
        "auditor_db_password",
        "redis_url",
        "eval_folder",
        "eval_classnames",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"

    @property
    def readable_server_files(self) -> Path | None:
        """The server's data folder if this process can read its files (SERVER_DATA_DIR)."""
        if self.server_data_dir is not None:
            return self.server_data_dir
        return None if self.database_url else self.pgdata

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (adapters call this; libraries take values)."""
    return Settings()
