"""Encoders built in a parent process and first used in a forked child, as in a Celery prefork
pool: the child loads the models, builds the OpenVINO cache, and embeds like anyone else."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from asifdb.encoders import Encoder

_SCRIPT = """
import os, sys
from pathlib import Path
import numpy as np
import torch
from asifdb.encoders import get_encoder

cache, jpeg_path, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
image = get_encoder("tf_efficientnet_lite0", cache_dir=cache)
text = get_encoder("all-MiniLM-L6-v2")
assert not torch.cuda.is_initialized()
pid = os.fork()
if pid == 0:
    np.savez(out, image=image.embed_batch([jpeg_path.read_bytes()]),
             text=text.embed_batch(["a photo of a goldfish"]))
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_encoders_built_before_a_fork_work_in_the_child(
    tmp_path: Path, jpegs: list[bytes], image_encoder: Encoder, text_encoder: Encoder
) -> None:
    jpeg = tmp_path / "image.jpg"
    jpeg.write_bytes(jpegs[0])
    cache = tmp_path / "cache"
    subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(cache), str(jpeg), str(tmp_path / "out.npz")],
        check=True,
        timeout=600,
    )
    out = np.load(tmp_path / "out.npz")
    assert float(out["image"][0] @ image_encoder.embed_batch(jpegs[:1])[0]) >= 0.99999
    assert float(out["text"][0] @ text_encoder.embed_batch(["a photo of a goldfish"])[0]) >= 0.99999
    assert list(cache.glob("*/model.xml")), "the child left its OpenVINO build in the cache"
