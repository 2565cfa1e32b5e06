"""The stage cache: background passes (StageCache.start) and how the chain picks them up."""

import threading
from dataclasses import dataclass

import pytest
from rich.console import Console

from edgefusion_export.errors import UserError
from edgefusion_export.stages import Pass, StageCache, StageResult


@dataclass(frozen=True)
class Done(StageResult):
    thread: str


def test_a_started_pass_runs_in_the_background_and_run_waits_for_it(tmp_path):
    cache = StageCache(tmp_path, Console(quiet=True))
    release, calls = threading.Event(), []

    def produce(folder):
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

    def produce(folder):
        raise UserError("QNN could not compile unet")

    step = Pass("qnn unet chip", {"k": 2}, produce, Done)
    cache.start(step)
    with pytest.raises(UserError, match="QNN could not compile unet"):
        cache.run(step)
    assert not cache.folder(step).exists()  # nothing half-written


def test_an_exclusive_pass_waits_for_the_background(tmp_path):
    cache = StageCache(tmp_path, Console(quiet=True))
    events = []

    def background(folder):
        threading.Event().wait(0.3)
        events.append("background done")
        return Done(threading.current_thread().name)

    def heavy(folder):
        events.append("exclusive started")
        return Done(threading.current_thread().name)

    cache.start(Pass("qnn vae_decoder chip", {"k": 3}, background, Done))
    cache.run(Pass("w8a16 unet", {"k": 4}, heavy, Done, exclusive=True))
    assert events == ["background done", "exclusive started"]
