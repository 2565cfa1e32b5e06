"""The wheel works away from the checkout: everything the code reads is package data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "COLUMNS": "200"}
    environment.pop("EDGEFUSION_PROFILES", None)
    return subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=600, env=environment)


def test_the_installed_wheel_lists_targets_and_compiles_for_snapdragon(tmp_path):
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "wheels",
                ROOT, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "wheels").glob("edgefusion_export-*.whl"))
    # A fresh environment that sees the installed dependencies but neither the checkout nor its editable install.
    environment = tmp_path / "env"
    assert run(sys.executable, "-m", "venv", "--without-pip", environment, cwd=tmp_path).returncode == 0
    python = environment / "bin" / "python"
    site_packages = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).stdout.strip())
    (site_packages / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site_packages, wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    location = run(python, "-c", "import edgefusion_export; print(edgefusion_export.__file__)", cwd=tmp_path).stdout
    assert location.startswith(str(site_packages)), location

    targets = run(python, "-m", "edgefusion_export.cli", "targets", cwd=tmp_path)
    assert targets.returncode == 0, targets.stderr
    assert "snapdragon-8-gen-3" in targets.stdout and "SM8650" in targets.stdout
    compiled = run(python, "-m", "edgefusion_export.cli", "compile", "--preset", "tiny", "--target", "snapdragon",
                   "--height", 64, "--width", 64, "-o", tmp_path / "bundle", "--cache-dir", tmp_path / "cache", cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr[-2000:]
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["target"]["chipsets"][0]["soc"] == "SM8650"
    assert all(entry["compiled"]["snapdragon-8-gen-3"]["offline"]["partitions"] == 1 for entry in manifest["components"].values())
