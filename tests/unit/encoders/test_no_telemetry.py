"""Nothing phones home: encoding an image with the default (OpenVINO) encoder in a fresh process
starts no telemetry sender, writes nothing under the home folder, and the process exits."""

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import SHARED_DATA

_ENCODE = """
import sys
import asifdb  # first, as every component does
from PIL import Image
from asifdb.encoders import get_encoder
image = Image.open(sys.argv[1]).convert("RGB")
encoder = get_encoder("tf_efficientnet_lite0", cache_dir=None)
print(encoder.embed_batch([image]).shape)
import multiprocessing
assert not multiprocessing.active_children(), multiprocessing.active_children()
assert sys.modules.get("openvino_telemetry") is None
"""


def test_encoding_sends_nothing_and_writes_nothing_at_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    image = next((SHARED_DATA / "cifar10" / "test" / "cat").glob("*.png"))
    env = {**os.environ, "HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("CI", None)  # the library's own CI exception must not be what keeps it quiet
    done = subprocess.run(
        [sys.executable, "-c", _ENCODE, str(image)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "(1, 1280)" in done.stdout
    assert list(home.rglob("*")) == [], "something wrote under the home folder"
