"""The wired platform for one process: settings, database, blob store, encoders, live model.

Adapters (CLI, API, UI, workers) build one `Platform` and hand its parts to services.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from asifdb.blobs import BlobStore, private_folder
from asifdb.db import embedded, schema
from asifdb.db.roles import Role
from asifdb.db.session import check_reachable, database_url, make_engine, session_factory
from asifdb.encoders import Encoder, get_encoder
from asifdb.services.model import Encoders
from asifdb.settings import Settings, get_settings

if TYPE_CHECKING:  # torch: imported by the processes that query, not by every CLI command
    from asifdb.anchors.live import LiveModel
    from asifdb.services.models import ModelRef
    from asifdb.services.submit import Dispatcher


PRIVATE_UMASK = 0o077


@dataclass
class Platform:
    """Lazily connected parts; `close()` stops an embedded server this process started."""

    settings: Settings
    role: Role = "app"
    start_embedded: bool = True
    _started_embedded: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        # Everything a component writes (blobs, uploads, caches, reports) is its OS user's
        # alone; every adapter builds a Platform, so no writer can forget it.
        os.umask(PRIVATE_UMASK)

    @cached_property
    def url(self) -> str:
        was_running = self.settings.database_url or embedded.running_url(self.settings.pgdata)
        url = database_url(self.settings, role=self.role, start_embedded=self.start_embedded)
        self._started_embedded = not was_running
        return url

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(self.url)
        check_reachable(engine)
        return engine

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine)

    @cached_property
    def blobs(self) -> BlobStore:
        store = BlobStore(self.settings.blob_dir)
        private_folder(store.root)
        return store

    @cached_property
    def live(self) -> "LiveModel":
        from asifdb.anchors.live import IvfPolicy, LiveModel
        from asifdb.engine.ivf import IvfParams

        settings = self.settings
        policy = IvfPolicy(
            above=settings.ivf_above,
            max_imbalance=settings.ivf_max_imbalance,
            max_unusable=settings.ivf_max_unusable,
            params=IvfParams(coding=settings.ivf_coding, nprobe=settings.ivf_nprobe),
        )
        return LiveModel(scan=settings.exact_scan, ivf=policy)

    @cached_property
    def encoders(self) -> Encoders:
        """The configured encoders, loaded on first use (never at import or in a parent)."""
        # The OpenVINO build of the image encoder is cached here, not rebuilt per process.
        cache = self.settings.data_dir / "cache" / "encoders"
        return Encoders(
            image=get_encoder(self.settings.image_encoder, cache_dir=cache),
            text=get_encoder(self.settings.text_encoder),
        )

    def encoders_of(self, image_encoder: str | None, text_encoder: str | None) -> Encoders:
        """The encoders called so (canonical names), each loaded once per process; the
        configured one where a name is its or not set yet (a model before its first pair)."""
        configured = self.encoders
        return Encoders(
            image=self._encoder(image_encoder, configured.image),
            text=self._encoder(text_encoder, configured.text),
        )

    def _encoder(self, name: str | None, configured: "Encoder[Any]") -> "Encoder[Any]":
        if name is None or name == configured.name:
            return configured
        loaded = self.__dict__.setdefault("_encoders_by_name", {})
        if name not in loaded:
            # The OpenVINO build of an image encoder is cached here (ignored by text ones).
            loaded[name] = get_encoder(
                name, cache_dir=self.settings.data_dir / "cache" / "encoders"
            )
        return loaded[name]

    def model(self, name: str | None = None) -> "ModelHandle":
        """What a query of the model called `name` (None: the default) runs on: the model as
        the database has it now, its live anchors in this process, its encoders. The query's
        service checks again in its own snapshot (`services.models.require`)."""
        from asifdb.anchors.live import LiveModel
        from asifdb.services import models

        with self.sessions() as session:
            ref = models.resolve(session, self.settings, name)
        if ref.is_default:
            live = self.live
        else:
            named = self.__dict__.setdefault("_named_live", {})
            if ref.name not in named:
                named[ref.name] = LiveModel(scan=self.settings.exact_scan, model=ref.name)
            live = named[ref.name]
        return ModelHandle(ref, live, self.encoders_of(ref.image_encoder, ref.text_encoder))

    @cached_property
    def dispatcher(self) -> "Dispatcher":
        """The port to the workers: Celery's tasks (imported on first use: importing them
        builds the Celery app)."""
        from workers.tasks import CeleryDispatcher

        return CeleryDispatcher()

    def require_schema(self) -> str:
        """Fail with the fix unless migrations are at head; return the head revision."""
        return schema.require_head(self.engine)

    def close(self, *, keep_server: bool = False) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
        if self._started_embedded and not keep_server:
            embedded.stop(self.settings.pgdata)


@dataclass(frozen=True)
class ModelHandle:
    """A model's parts in this process: what it is, its live anchors, its encoders."""

    ref: "ModelRef"
    live: "LiveModel"
    encoders: Encoders


@contextmanager
def platform_at_head(role: Role = "app", *, keep_server: bool = False) -> Iterator[Platform]:
    """The configured platform, connected as `role`, its schema checked at head; closed on exit
    (an embedded server this process started is stopped unless `keep_server`: the workers a
    submission left running still need it)."""
    platform = Platform(get_settings(), role=role)
    try:
        platform.require_schema()
        yield platform
    finally:
        platform.close(keep_server=keep_server)
