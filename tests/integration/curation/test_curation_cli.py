"""`asifdb curate` against a real database: score, list, reject with a reason, restore."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.curation.conftest import NOISY, K, Seeded

ASIFDB = [sys.executable, "-m", "asifdb.cli", "curate"]


def test_fit_list_reject_restore(seeded: Seeded, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "DATABASE_URL": seeded.clone(data_dir),
        "DATA_DIR": str(data_dir),
        "K": str(K),
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*ASIFDB, *args], env=env, capture_output=True, text=True, timeout=300
        )

    scored = run("fit", "--k", str(K))
    assert scored.returncode == 0, scored.stderr
    assert f"scored 65 of 65 usable pairs in the encoders' spaces, k = {K}, p = 8 " in scored.stdout
    listed = run("mismatches", "--limit", "5", "--json")
    items = json.loads(listed.stdout)["items"]
    noisy = [str(r["pair_id"]) for r in items if r["license"] == NOISY]
    assert len(noisy) == 3

    refused = run("reject", *noisy)
    assert refused.returncode != 0 and "--reason" in refused.stderr
    done = run("reject", *noisy, "--reason", "wrong class")
    assert done.returncode == 0 and "3 rejected, 3 left the model" in done.stdout
    again = json.loads(run("mismatches", "--limit", "500", "--json").stdout)["items"]
    assert not {str(r["pair_id"]) for r in again} & set(noisy)
    back = run("restore", *noisy)
    assert back.returncode == 0 and "3 back in the model" in back.stdout
