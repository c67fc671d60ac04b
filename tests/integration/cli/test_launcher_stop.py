"""`asifdb up`'s supervisor stops on Ctrl-C: every child gets SIGTERM, one that ignores it is
killed at the shared deadline (all gone within 15 s), and a second Ctrl-C kills at once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asifdb import launcher

# Two children, as the launcher starts them: one stops on SIGTERM, one ignores SIGTERM and
# SIGINT (a worker stuck in a call that never returns). Each writes its pid once it is set.
_CHILD = """
import os, signal, sys, time
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
while True:
    time.sleep(1)
"""
_SUPERVISOR = """
import sys
from asifdb import launcher
child = [sys.executable, "-c", sys.argv[2], sys.argv[1]]
services = [launcher.Service(kind, [*child, kind]) for kind in ("polite", "stubborn")]
sys.exit(launcher.run(services, {}))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _start(folder: Path) -> tuple[subprocess.Popen[str], list[int]]:
    # Its own session: a Ctrl-C reaches the whole foreground group, supervisor and children.
    proc = subprocess.Popen(
        [sys.executable, "-c", _SUPERVISOR, str(folder), _CHILD],
        start_new_session=True,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    return proc, [int(p.name) for p in folder.iterdir()]


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_every_child_within_15_s(tmp_path: Path, presses: int) -> None:
    proc, pids = _start(tmp_path)
    started = time.monotonic()
    for _ in range(presses):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.5)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    took = time.monotonic() - started
    print(f"{presses} Ctrl-C: every child stopped in {took:.2f} s")
    assert proc.returncode == 0, out
    assert not [pid for pid in pids if _alive(pid)], "a child outlived the supervisor"
    if presses == 1:
        # The stubborn child was given the whole grace, then killed.
        assert launcher.STOP_GRACE_S <= took < 15, out
        assert "did not stop" in out
    else:
        assert took < 3, out
