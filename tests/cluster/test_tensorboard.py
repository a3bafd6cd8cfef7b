"""`python -m cluster tensorboard` serves the run folder on 127.0.0.1 and refuses a missing folder."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request

from tests.ports import free_port


def test_tensorboard_serves_the_run_folder_on_loopback(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(tmp_path / "exp") as writer:
        writer.add_scalar("score", 0.5, 1)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cluster", "tensorboard", "--logdir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline, body = time.monotonic() + 60, None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.5)
        assert body is not None and "exp" in body
        if shutil.which("ss"):
            listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
            assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_missing_run_folder_is_a_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cluster", "tensorboard", "--logdir", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and result.stderr.count("\n") == 1 and "no run folder" in result.stderr
