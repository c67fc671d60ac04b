"""Fixtures for the Streamlit pages: each test gets its own copy of a seeded database, and an
`AppTest` of `ui/app.py` signed in with a real key of the role it needs."""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Widget

from asifdb.context import Platform
from asifdb.services.model import Encoders
from asifdb.settings import get_settings
from tests.ui.seeding import K, Seeded, seed

UI = Path(__file__).resolve().parents[2] / "ui"
W = TypeVar("W", bound=Widget)


@pytest.fixture(scope="session")
def seeded(
    pg_server: str, shared_data: Path, tmp_path_factory: pytest.TempPathFactory, encoders: Encoders
) -> Seeded:
    return seed(pg_server, shared_data, tmp_path_factory.mktemp("ui-seed"), encoders)


@dataclass
class Ui:
    """The test's data folder, the UI process's platform (on the test's database), the keys."""

    data_dir: Path
    platform: Platform
    keys: dict[str, str]

    def app(self, role: str, page: str | None = None) -> AppTest:
        """`ui/app.py`, signed in with the role's key, on `page` (e.g. "views/licences.py")."""
        at = AppTest.from_file(str(UI / "app.py"), default_timeout=180).run()
        at.text_input[0].set_value(self.keys[role])
        at.button[0].click().run()
        assert not at.exception, at.exception
        if page is not None:
            at.switch_page(page).run()
            assert not at.exception, at.exception
        return at


def labelled(elements: Sequence[W], label: str) -> W:
    """The one element of `elements` (e.g. `at.button`) with this label."""
    [found] = [e for e in elements if e.label == label]
    return found


def _clear_caches() -> None:
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def ui(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoders: Encoders
) -> Iterator[Ui]:
    """The UI process's settings point at a fresh copy of the seeded database."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATABASE_URL", seeded.clone(data_dir))
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("K", str(K))
    monkeypatch.delenv("REDIS_URL", raising=False)
    # `streamlit run` puts the script's folder first on sys.path; AppTest does not.
    monkeypatch.syspath_prepend(str(UI))
    _clear_caches()
    import runtime

    platform = runtime.platform()
    platform.__dict__["encoders"] = encoders  # the run's loaded encoders, not a fresh load
    yield Ui(data_dir, platform, seeded.keys)
    platform.close()
    _clear_caches()


@pytest.fixture
def ship_image(shared_data: Path) -> Callable[[int], Path]:
    """The n-th CIFAR-10 test photo of a ship (never one of the seeded train images)."""
    return lambda n: sorted((shared_data / "cifar10" / "test" / "ship").iterdir())[n]
