"""The example CI workflows in examples/ci: each is YAML that GitHub Actions can read, and every edgefusion-export
command in it parses as the CLI has it: its subcommand, options, choices and chipset names (a renamed option fails
this test, not a user's CI)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from edgefusion_export.cli import main
from edgefusion_export.targets.chipsets import load_chipsets

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples" / "ci").glob("*.yml"))


def commands(workflow: dict) -> list[list[str]]:
    """The words of each edgefusion-export command in the workflow's `run` scripts: continued lines joined, a
    matrix value as its first entry, the script's shell variables (`args="--baseline ..."`) put in, output
    redirection dropped."""
    found = []
    for job in workflow["jobs"].values():
        matrix = job.get("strategy", {}).get("matrix", {})
        for script in [step["run"] for step in job["steps"] if "run" in step]:
            script = re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda match: str(matrix[match[1]][0]),
                            script.replace("\\\n", " "))
            for name, value in re.findall(r'\b(\w+)="([^"]*)"', script):
                script = script.replace(f"${name}", value) if value else script
            found += [shlex.split(line.strip().partition(">")[0]) for line in script.splitlines()
                      if line.strip().startswith("edgefusion-export ")]
    return found


def test_there_are_examples():
    assert {path.name for path in EXAMPLES} >= {"estimate-regression.yml", "profile-regression.yml",
                                                "nightly-npu-verification.yml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_workflow_uses_the_cli_as_it_is(path):
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert workflow["name"] and workflow["jobs"] and True in workflow  # YAML 1.1 reads the `on:` key as True
    found = commands(workflow)
    assert found, f"{path.name} runs no edgefusion-export command"
    for words in found:
        command = main.commands.get(words[1])
        assert command is not None, f"{path.name}: no subcommand {words[1]!r}"
        context = command.make_context(words[1], words[2:])  # a misspelt option or an unknown choice raises
        chipsets = context.params.get("chipset") or context.params.get("chipsets") or ()
        assert set([chipsets] if isinstance(chipsets, str) else chipsets) <= load_chipsets().keys(), words
