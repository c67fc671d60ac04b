"""The UI sends no usage statistics to Streamlit, however it starts: `asifdb up`, the compose
`ui` service, or any command in the image (its ENV). Read with Streamlit's own resolver."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from asifdb import launcher
from asifdb.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def _gathers_usage_stats(flags: list[str], env: dict[str, str], home: Path) -> bool:
    shown = subprocess.run(
        [sys.executable, "-m", "streamlit", "config", "show", *flags],
        env={**env, "HOME": str(home)},
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    # A value left at its default is shown commented out.
    values = [
        line for line in shown.splitlines() if line.lstrip("# ").startswith("gatherUsageStats = ")
    ]
    assert len(values) == 1, shown
    return values[0].endswith("true")


def _flags(argv: list[str]) -> list[str]:
    return argv[argv.index("ui/app.py") + 1 :]


def _image_env() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ENV "))
    return dict(pair.split("=", 1) for pair in line.split()[1:])


@pytest.fixture
def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}


def test_streamlit_gathers_usage_stats_unless_told(tmp_path: Path, clean_env: dict) -> None:
    assert _gathers_usage_stats([], clean_env, tmp_path)


def test_asifdb_up_starts_the_ui_without_usage_stats(tmp_path: Path, clean_env: dict) -> None:
    (ui,) = [s for s in launcher.services(Settings()) if s.name == "ui"]
    assert not _gathers_usage_stats(_flags(ui.argv), {**clean_env, **ui.env}, tmp_path)


def test_the_compose_ui_and_the_image_send_no_usage_stats(tmp_path: Path, clean_env: dict) -> None:
    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["ui"]
    assert not _gathers_usage_stats(_flags(command["command"]), clean_env, tmp_path)
    assert not _gathers_usage_stats([], {**clean_env, **_image_env()}, tmp_path)
