"""The stage cache: background passes (StageCache.start) and how the chain picks them up; what a killed build
leaves behind, and the `cache` command."""

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest
from rich.console import Console

from edgefusion_export.errors import UserError
from edgefusion_export.files import staged_directory
from edgefusion_export.processes import in_fresh_process
from edgefusion_export.stages import Pass, StageCache, StageResult

from .conftest import run_cli

KILLED_MID_STAGE = """
import os, signal, sys
from pathlib import Path
from edgefusion_export.files import staged_directory
with staged_directory(Path(sys.argv[1])) as staging:
    (staging / "unet.onnx.data").write_bytes(bytes(3 << 20))
    os.kill(os.getpid(), signal.SIGKILL)
"""


@dataclass(frozen=True)
class Done(StageResult):
    thread: str


def test_a_started_pass_runs_in_the_background_and_run_waits_for_it(tmp_path):
    cache = StageCache(tmp_path, Console(quiet=True))
    release, calls = threading.Event(), []

    def produce(folder, k):
        calls.append(folder)
        assert release.wait(10)  # blocks until the chain, still running, lets it finish
        (folder / "artifact").write_text("made")
        return Done(threading.current_thread().name)

    step = Pass("qnn unet chip", {"k": 1}, produce, Done)
    cache.start(step)
    cache.start(step)  # already started: not queued twice
    assert not (cache.folder(step) / "stage.json").exists()  # the chain goes on meanwhile
    release.set()
    folder, result = cache.run(step)
    assert result.thread == "background-passes" and len(calls) == 1
    assert (folder / "artifact").read_text() == "made"
    assert [(record.name, record.cached) for record in cache.records] == [("qnn unet chip", False)]
    assert cache.run(step)[1] == result and cache.records[-1].cached  # finished: the cache serves it


def test_a_failed_background_pass_raises_where_the_chain_waits(tmp_path):
    cache = StageCache(tmp_path, Console(quiet=True))

    def produce(folder, k):
        raise UserError("QNN could not compile unet")

    step = Pass("qnn unet chip", {"k": 2}, produce, Done)
    cache.start(step)
    with pytest.raises(UserError, match="QNN could not compile unet"):
        cache.run(step)
    assert not cache.folder(step).exists()  # nothing half-written


def test_an_exclusive_pass_waits_for_the_background(tmp_path):
    cache = StageCache(tmp_path, Console(quiet=True))
    events = []

    def background(folder, k):
        threading.Event().wait(0.3)
        events.append("background done")
        return Done(threading.current_thread().name)

    def heavy(folder, k):
        events.append("exclusive started")
        return Done(threading.current_thread().name)

    cache.start(Pass("qnn vae_decoder chip", {"k": 3}, background, Done))
    cache.run(Pass("w8a16 unet", {"k": 4}, heavy, Done, exclusive=True))
    assert events == ["background done", "exclusive started"]


def test_a_failed_chain_stops_the_background_work_at_once(tmp_path):
    started = []

    def qnn_compile(folder, k):
        started.append(folder)
        in_fresh_process(time.sleep, 60, temp_parent=folder)
        return Done(threading.current_thread().name)

    begin = time.perf_counter()
    with pytest.raises(UserError, match="misses its gate"):
        with StageCache(tmp_path, Console(quiet=True)) as cache:
            cache.start(Pass("qnn vae_decoder chip", {"k": 7}, qnn_compile, Done))
            cache.start(Pass("qnn unet chip", {"k": 8}, qnn_compile, Done))
            while not started:
                time.sleep(0.05)
            raise UserError("the UNet misses its gate")
    assert time.perf_counter() - begin < 15  # not the 60 s the compile would take
    assert len(started) == 1  # the queued pass never began
    assert not [path for path in tmp_path.rglob("*") if path.is_file()]  # nothing half-written stays


def kill_mid_stage(folder):
    """A real process killed while it writes `folder` (as the OOM killer or a CI timeout does)."""
    subprocess.run([sys.executable, "-c", KILLED_MID_STAGE, str(folder)], check=False)
    return [path for path in folder.parent.iterdir() if ".partial-" in path.name]


def test_a_killed_stage_is_swept_when_the_folder_is_next_written_and_live_ones_are_kept(tmp_path):
    target = tmp_path / "w8a16-unet" / "0123abcd"
    leftovers = kill_mid_stage(target)
    assert len(leftovers) == 1 and not target.exists()
    live = tmp_path / "w8a16-unet" / f".other.partial-{os.getpid()}@{socket.gethostname()}+x"  # a build still running
    finished = subprocess.Popen(["true"])
    finished.wait()
    elsewhere = tmp_path / "w8a16-unet" / f".other.partial-{finished.pid}@another-host+x"  # a shared cache's
    live.mkdir(), elsewhere.mkdir()
    with staged_directory(target) as staging:
        (staging / "unet.onnx").write_text("done")
    assert sorted(path.name for path in target.parent.iterdir()) == sorted(["0123abcd", live.name, elsewhere.name])


def test_a_cache_reached_through_links_names_artifacts_by_their_place_in_it(tmp_path):
    """The cache folder a link, and one pass folder a link to another disk (the UNet's gigabytes moved there): a
    pass that reads an artifact folder keys it by its place in the cache, and the second build is served."""
    disk, other_disk = tmp_path / "disk", tmp_path / "other-disk" / "calibrate"
    disk.mkdir(), other_disk.mkdir(parents=True)
    (disk / "calibrate").symlink_to(other_disk)
    (tmp_path / "cache").symlink_to(disk)

    def calibrate(folder, k):
        (folder / "ranges.json").write_text("{}")
        return Done("calibrated")

    def quantize(folder, ranges):
        (folder / "unet.onnx").write_text((ranges / "ranges.json").read_text())
        return Done("quantized")

    keys = []
    for _ in range(2):
        cache = StageCache(tmp_path / "cache", Console(quiet=True))
        ranges, _ = cache.run(Pass("calibrate", {"k": 1}, calibrate, Done))
        step = Pass("w8a16 unet", {"ranges": ranges}, quantize, Done)
        keys.append(cache.key(step)["inputs"]["ranges"])
        cache.run(step)
        assert [record.cached for record in cache.records] == [bool(keys[1:])] * 2
    assert keys[0] == keys[1] == f"cache:calibrate/{ranges.name}"
    assert (other_disk / ranges.name / "ranges.json").is_file()


def test_cache_command_reports_sweeps_and_prunes(tmp_path):
    cache = StageCache(tmp_path, Console(quiet=True))
    used, unused = (Pass("export unet", {"k": k}, lambda folder, k: Done("x"), Done) for k in (5, 6))
    cache.run(unused)
    stale = time.time() - 3 * 86400
    os.utime(cache.folder(unused) / "stage.json", (stale, stale))
    cache.run(used)
    kill_mid_stage(tmp_path / "qnn-unet" / "0123abcd")

    listing = run_cli("cache", "--cache-dir", tmp_path)
    assert listing.exit_code == 0
    assert "removed 3.0 MB left by killed builds" in listing.stdout
    assert "export-unet" in listing.stdout and "2 stages" in listing.stdout
    assert not [path for path in (tmp_path / "qnn-unet").iterdir()]

    cache.run(unused)  # a cache hit counts as a use
    os.utime(cache.folder(used) / "stage.json", (stale, stale))
    pruned = run_cli("cache", "--cache-dir", tmp_path, "--prune", "2")
    assert "removed 1 stages" in pruned.stdout and "1 stages" in pruned.stdout
    assert not cache.folder(used).exists() and cache.folder(unused).is_dir()
    assert "0 stages, 0.0 MB" in run_cli("cache", "--cache-dir", tmp_path, "--prune", "0").stdout
