"""`--address`: the sweep runs on an existing Ray cluster, a head started here with its own temp
dir (so it writes no /tmp/ray/ray_current_cluster), stopped at the end by killing only its own
processes: never `ray stop`, which would stop every Ray on the machine."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.sweeps.helpers import cli_env, run_cli, tiny_spec, write_spec

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes_of(temp_dir: str) -> list[int]:
    """Ray processes whose command line names our temp dir, and their descendants."""
    parents: dict[int, int] = {}
    roots = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if temp_dir in cmdline:
            roots.append(int(entry.name))
    found, frontier = set(roots), list(roots)
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid and child not in found]
        found.update(children)
        frontier.extend(children)
    return sorted(found)


def _stop_head(temp_dir: str) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _processes_of(temp_dir):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while _processes_of(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture
def ray_head():
    temp_dir = tempfile.mkdtemp(prefix="grs-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    port = _free_port()
    ray = str(Path(sys.executable).with_name("ray"))
    start = subprocess.run([ray, "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                            "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
                            "--temp-dir", temp_dir], env=cli_env(), capture_output=True, text=True, timeout=120)
    try:
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        _stop_head(temp_dir)
    assert not _processes_of(temp_dir)
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_sweep_runs_on_an_existing_cluster(tmp_path, ray_head):
    spec_path = write_spec(tmp_path, tiny_spec(name="remote"))
    proc = run_cli("sweep", "run", str(spec_path), "--out", str(tmp_path / "runs"), "--address", ray_head,
                   "--no-wandb")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"on {ray_head}" in proc.stdout
    # Before launching, every node's workers wrote a probe the driver saw (then removed).
    assert "sweep folder shared by the cluster's 1 node(s)" in proc.stdout
    assert not list((tmp_path / "runs/remote").glob(".probe-*"))
    table = pd.read_parquet(tmp_path / "runs/remote/results.parquet")
    assert set(table["node"]) == {socket.gethostname()}
    finals = table[table["eval_kind"] == "final"]
    assert sorted(finals["trial_id"]) == ["dlrm-xs-C1e8-seed0", "dlrm-xs-C2e8-seed0", "hstu-xs-C1e8-seed0",
                                          "hstu-xs-C2e8-seed0"]
    assert set(finals["status"]) == {"done"}


def test_a_node_that_does_not_share_the_sweep_folder_is_named(tmp_path):
    """The check's failing branches, as a second machine would make them: a node whose probe went
    to a disk of its own (the driver never sees it) and a node that cannot write the path at all."""
    from scaling.errors import GrscaleError
    from sweeps.launcher import Probe, check_probes

    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    seen = sweep_dir / ".probe-a"
    seen.write_text("probe")
    node_b = Probe("node-b (10.0.0.2)", sweep_dir / ".probe-b")  # written on node-b's own disk
    with pytest.raises(GrscaleError) as caught:
        check_probes(sweep_dir, [Probe("node-a (10.0.0.1)", seen), node_b])
    message = str(caught.value)
    assert message.startswith("node node-b (10.0.0.2): what its workers write there does not reach this machine")
    assert f"the sweep folder {sweep_dir} must be on a file system every node shares" in message
    assert not seen.exists()  # probes are removed either way
    unwritable = Probe("node-c (10.0.0.3)", sweep_dir / ".probe-c", "FileNotFoundError: No such file or directory")
    with pytest.raises(GrscaleError, match=r"^node node-c \(10.0.0.3\): its workers cannot write there "
                                           r"\(FileNotFoundError: No such file or directory\)"):
        check_probes(sweep_dir, [unwritable])
