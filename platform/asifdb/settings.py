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
    recovery_stale_after_s: float = Field(
        default=600, gt=0, description="A batch sent this long ago and still undone is resent."
    )
    recovery_interval_s: float = Field(default=60, gt=0, description="How often workers look.")
    eval_folder: Path | None = Field(
        default=None,
        description="A labelled folder (one sub-folder a class) for the Model page's check.",
    )
    eval_classnames: Path | None = Field(
        default=None, description="Its class names (`folder<TAB>name` lines), if not folders."
    )
    eval_templates: str = Field(default="default", description="Template set name or file.")
    eval_limit_per_class: int = Field(default=10, ge=1, description="Images a class checked.")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ui_port: int = 8501

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
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once (adapters call this; libraries take values)."""
    return Settings()
