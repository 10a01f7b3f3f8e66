"""The Ray fixture's clean-up after a failed start (conftest.py): a node that did not register
in time is not in the cluster's list, so its processes are found by their temporary dir."""

from __future__ import annotations

import subprocess
import sys
import tempfile

import pytest

from tests.cluster.conftest import stop_started_from

pytestmark = pytest.mark.cluster


def test_a_failed_start_leaves_no_process_behind() -> None:
    temp_dir = tempfile.mkdtemp(prefix="sheafdb-ray-", dir="/tmp")
    sleeper = [sys.executable, "-c", "import time, sys; time.sleep(120)"]
    left_behind = subprocess.Popen([*sleeper, f"--temp-dir={temp_dir}"])
    unrelated = subprocess.Popen([*sleeper, "--temp-dir=/tmp/elsewhere"])
    try:
        stop_started_from(temp_dir)
        assert left_behind.wait(30) != 0  # killed
        assert unrelated.poll() is None
    finally:
        for process in (left_behind, unrelated):
            process.kill()
            process.wait(30)
