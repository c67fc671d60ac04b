"""`asifdb models` end to end: a named model of a real other encoder, built by a real worker,
queried by name beside the default one through `asifdb classify --model`."""

import json
import subprocess
import tarfile
from pathlib import Path

from tests.samples import asifdb_cli, cli_env, copy_samples, solo_worker


def test_a_named_model_is_built_by_the_worker_and_answers_beside_the_default(
    db_url: str, shared_data: Path, tmp_path: Path
) -> None:
    env = cli_env(db_url, tmp_path / "data")
    env.pop("REDIS_URL", None)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return asifdb_cli(*args, env=env, timeout=600)

    (tmp_path / "wds").mkdir()
    with tarfile.open(tmp_path / "wds" / "00000.tar", "w") as tar:
        copy_samples(shared_data, tar, 8)
    image = sorted((shared_data / "cifar10" / "test" / "cat").iterdir())[0]
    with solo_worker(env, tmp_path / "worker.log"):
        assert cli("licenses", "create", "tiny").returncode == 0
        assert cli("ingest", str(tmp_path / "wds"), "--license", "tiny").returncode == 0
        added = cli(
            "models",
            "add",
            "lite1",
            "--image-encoder",
            "tf_efficientnet_lite1",
            "--text-encoder",
            "all-MiniLM-L6-v2",
            "--k",
            "5",
            "--wait",
        )
        log = (tmp_path / "worker.log").read_text()
        assert added.returncode == 0, added.stdout + added.stderr + log[-3000:]
    listed = {m["name"]: m for m in json.loads(cli("models", "list", "--json").stdout)}
    assert listed["lite1"]["status"] == "ready" and listed["lite1"]["usable_pairs"] == 8
    assert listed["lite1"]["image_encoder"].startswith("timm/tf_efficientnet_lite1@")
    assert listed["default"]["default"] and listed["default"]["usable_pairs"] == 8

    answers = {}
    for model in ("lite1", None):
        done = cli(
            "classify",
            str(image),
            "--labels",
            "cat,dog,car",
            *(["--model", model] if model else []),
            "--json",
        )
        assert done.returncode == 0, done.stderr
        [answers[model]] = json.loads(done.stdout)
    assert (answers["lite1"]["model"], answers["lite1"]["k"]) == ("lite1", 5)
    assert (answers[None]["model"], answers[None]["k"]) == ("default", 800)
    unknown = cli("classify", str(image), "--labels", "cat,dog", "--model", "nope")
    assert unknown.returncode != 0 and "no model 'nope'" in unknown.stdout + unknown.stderr

    # One command makes it the default (the worker finds nothing to embed, then switches); the next
    # classify, a new process with the same settings, answers with its encoders, k and p.
    with solo_worker(env, tmp_path / "worker2.log"):
        switched = cli("models", "default", "lite1", "--wait")
    assert switched.returncode == 0, switched.stdout + switched.stderr
    listed = {m["name"]: m for m in json.loads(cli("models", "list", "--json").stdout)}
    assert listed["default"]["image_encoder"] == listed["lite1"]["image_encoder"]
    done = cli("classify", str(image), "--labels", "cat,dog,car", "--json")
    assert done.returncode == 0, done.stderr
    [after] = json.loads(done.stdout)
    assert (after["model"], after["k"]) == ("default", 5)
    assert after["scores"] == answers["lite1"]["scores"], "the same model as lite1"
