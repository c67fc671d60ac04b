"""`asifdb eval` against a real database holding real pairs: accuracy, per class, JSON, errors."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from asifdb.context import Platform
from asifdb.experiments.anchors_db import ingest
from asifdb.services.model import Encoders
from asifdb.settings import Settings
from tests.samples import asifdb_cli, cli_env, tiny_shard

PAIRS = 120


def run(*args: str, database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return asifdb_cli("eval", *args, env=cli_env(database_url, data_dir))


@pytest.fixture
def model_url(db_url: str, encoders: Encoders, shared_data: Path, tmp_path: Path) -> str:
    """A database whose model is the first real pairs of the anchor shards."""
    wds = tiny_shard(shared_data, tmp_path / "wds", PAIRS)
    platform = Platform(Settings(database_url=db_url, data_dir=tmp_path / "data"))
    platform.__dict__["encoders"] = encoders
    try:
        report = ingest(platform, wds, licence="anchors", batch_size=64)
    finally:
        platform.close()
    assert report.done == PAIRS
    return db_url


def _copy_classes(source: Path, target: Path, names: list[str], per_class: int) -> Path:
    for name in names:
        (target / name).mkdir(parents=True)
        for image in sorted((source / name).iterdir())[:per_class]:
            shutil.copyfile(image, target / name / image.name)
    return target


def test_eval_prints_accuracy_per_class_and_records_each_prediction(
    model_url: str, shared_data: Path, tmp_path: Path
) -> None:
    cifar = shared_data / "cifar10" / "test"
    folder = _copy_classes(cifar, tmp_path / "cifar", ["cat", "ship", "truck"], 3)

    out = run(
        str(folder), "--templates", "cifar", "--limit", "2", "--json",
        database_url=model_url, data_dir=tmp_path / "data",
    )  # fmt: skip

    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert (figures["images"], figures["classes"], figures["templates"]) == (6, 3, 18)
    assert set(figures["per_class"]) == {"cat", "ship", "truck"}
    assert figures["top1"] == pytest.approx(sum(figures["per_class"].values()) / 3)
    assert figures["top5"] == 1.0 and figures["chance"] == pytest.approx(1 / 3)
    assert figures["usable_pairs"] == PAIRS and figures["k"] == 800
    assert figures["seconds"] > 0 and figures["images_per_second"] > 0
    platform = Platform(Settings(database_url=model_url, data_dir=tmp_path / "data"))
    try:
        with platform.sessions() as session:
            recorded = session.execute(
                text("SELECT count(*) FROM predictions WHERE channel = 'eval' AND client = 'cli'")
            ).scalar_one()
    finally:
        platform.close()
    assert recorded == 6


def test_eval_reads_class_names_and_a_template_file_and_prints_a_table(
    model_url: str, shared_data: Path, tmp_path: Path
) -> None:
    val = shared_data / "tiny-imagenet" / "val"
    wnids = sorted(p.name for p in val.iterdir() if p.is_dir())[:2]
    folder = _copy_classes(val, tmp_path / "tiny", wnids, 2)
    templates = tmp_path / "templates.txt"
    templates.write_text("# mine\na photo of a {}.\n\nan image of the {}.\n")

    out = run(
        str(folder), "--classnames", str(shared_data / "tiny-imagenet" / "classnames.txt"),
        "--templates", str(templates), "--k", "50",
        database_url=model_url, data_dir=tmp_path / "data",
    )  # fmt: skip

    assert out.returncode == 0, out.stderr
    # Class names come from the file (wnid -> name), not the folder names.
    assert "goldfish" in out.stdout and "European fire salamander" in out.stdout
    assert "n01443537" not in out.stdout
    assert "on 4 images, 2 classes, 2 templates" in out.stdout
    assert "k = 50" in out.stdout and "images/s" in out.stdout


def test_eval_bad_input_is_a_clear_message(model_url: str, tmp_path: Path) -> None:
    unknown = run(
        str(tmp_path), "--templates", "nope", database_url=model_url, data_dir=tmp_path / "data"
    )
    assert unknown.returncode == 1
    assert "built-in set" in unknown.stderr and "Traceback" not in unknown.stderr

    empty = run(str(tmp_path / "missing"), database_url=model_url, data_dir=tmp_path / "data")
    assert empty.returncode == 1
    assert "not a folder" in empty.stderr and "Traceback" not in empty.stderr
