"""Reproducible builds: the same model and options, built twice from empty caches at the same paths with
SOURCE_DATE_EPOCH set, give byte-identical bundle files (the build report, a record of timings, aside)."""

from __future__ import annotations

import hashlib
import shutil

from .conftest import compile_args, run_cli
from .test_bad_input import assert_clean_error


def bundle_digests(bundle) -> dict[str, str]:
    return {path.relative_to(bundle).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(bundle.rglob("*")) if path.is_file() and path.name != "build_report.json"}


def test_two_clean_builds_give_byte_identical_bundles(tmp_path, monkeypatch):
    """QNN numbers graphs per process; each compile runs in a fresh one, so cached stages do not shift them."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    builds = []
    for _ in range(2):
        shutil.rmtree(tmp_path / "bundle", ignore_errors=True)
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)
        result = run_cli(*compile_args(tmp_path / "bundle", tmp_path / "cache", "--preset", "tiny", "--target", "snapdragon"))
        assert result.exit_code == 0, result.output
        builds.append(bundle_digests(tmp_path / "bundle"))
    assert builds[0] == builds[1]
    assert any(name.endswith("_qnn.bin") for name in builds[0])
    assert '"created": "2023-11-14T22:13:20+00:00"' in (tmp_path / "bundle" / "manifest.json").read_text()


def test_a_malformed_source_date_epoch_is_refused(tmp_path, monkeypatch, tiny_bundle, cache_dir):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    assert_clean_error(run_cli(*compile_args(tmp_path / "b", cache_dir, "--preset", "tiny")), "SOURCE_DATE_EPOCH")
