"""The composite GitHub Action (action.yml) and the example workflow in docs/github/: parsed,
checked for structure, and the action's verify step run for real with bash."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTION = ROOT / "action.yml"
WORKFLOW = ROOT / "docs" / "github" / "lazycheck-verify.yml"
EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


@pytest.fixture(scope="module")
def action() -> dict:
    return _load(ACTION)


@pytest.fixture(scope="module")
def workflow() -> dict:
    return _load(WORKFLOW)


def test_action_is_a_composite_action_with_the_inputs_it_documents(action) -> None:
    for key in ("name", "description", "inputs", "runs"):
        assert key in action, key
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert {"specs", "alpha", "strict", "args", "python-version"} <= set(inputs)
    assert inputs["specs"]["required"] is True
    assert inputs["strict"]["default"] == "true"
    for name, spec in inputs.items():
        assert spec.get("description"), f"input {name} has no description"
    # every `inputs.X` referenced exists, and every input is used
    used = {
        m.group(1).split(".", 1)[1]
        for s in _strings(action["runs"]) + _strings(action.get("outputs", {}))
        for m in EXPR.finditer(s)
        if m.group(1).startswith("inputs.")
    }
    assert used <= set(inputs), used - set(inputs)
    assert used == set(inputs), set(inputs) - used
    for step in action["runs"]["steps"]:
        if "run" in step:
            assert step.get("shell") == "bash"
            # expressions go through env, never into the script itself (no injection)
            assert "${{" not in step["run"], step["run"]


def test_action_installs_from_its_own_repository_and_runs_verify_once(action) -> None:
    steps = action["runs"]["steps"]
    install = [s for s in steps if "pip install" in s.get("run", "")]
    assert len(install) == 1
    assert install[0]["env"]["LAZYCHECK_SOURCE"] == "${{ github.action_path }}"
    runs = [s["run"] for s in steps if "run" in s]
    calls = [ln for r in runs for ln in r.splitlines() if re.match(r"\s*lazycheck\s", ln)]
    assert len(calls) == 1, calls
    script = "\n".join(runs)
    for flag in ("--junit", "--json", "--github", "--strict", "--no-progress"):
        assert flag in script, flag
    setup = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup and setup[0]["with"]["python-version"] == "${{ inputs.python-version }}"


def test_example_workflow_can_run(workflow, action) -> None:
    assert workflow["name"]
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as true
    assert on is not None and "pull_request" in on
    perms = workflow["permissions"]
    assert perms["checks"] == "write" and perms["pull-requests"] == "write"
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    uses = [s for s in steps if re.fullmatch(r"[\w.-]+/lazycheck@[\w.-]+", str(s.get("uses")))]
    assert len(uses) == 1, "the example runs the lazycheck action exactly once"
    step = uses[0]
    assert set(step["with"]) <= set(action["inputs"]), set(step["with"]) - set(action["inputs"])
    assert str(step["with"]["strict"]).lower() == "true"
    for spec in step["with"]["specs"].split():
        assert (ROOT / spec).exists(), f"the example names {spec}, which is not in the repo"
    # no step installs from the package index or runs verify by hand
    for s in steps:
        assert "pip install lazycheck" not in s.get("run", "")
        assert "lazycheck verify" not in s.get("run", "")
    publish = [s for s in steps if str(s.get("uses", "")).startswith("mikepenz/action-junit")]
    assert publish and publish[0]["if"] == "always()"
    assert publish[0]["with"]["report_paths"] == step["with"]["junit"]


def _verify_script(action: dict) -> str:
    (step,) = [s for s in action["runs"]["steps"] if s.get("id") == "verify"]
    return step["run"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("specs", "strict", "code"),
    [
        ("samples/two_layer_tanh.toml", "true", 0),
        ("samples/two_layer_tanh.toml samples/small*.toml", "false", 0),
        ("samples/two_layer_tanh.toml samples/small*.toml", "true", 1),
    ],
)
def test_action_verify_step_runs(action, tmp_path, specs, strict, code) -> None:
    """The action's own script, run by bash as the runner would: one verify call, every
    report written, the exit code passed on."""
    out, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "INPUT_SPECS": specs,
        "INPUT_ALPHA": "",
        "INPUT_STRICT": strict,
        "INPUT_ARGS": "--beta certified",
        "INPUT_JUNIT": str(tmp_path / "reports" / "lazycheck.xml"),
        "INPUT_JSON": str(tmp_path / "reports" / "lazycheck.json"),
        "GITHUB_OUTPUT": str(out),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    res = subprocess.run(
        ["bash", "-c", _verify_script(action)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == code, res.stdout + res.stderr
    assert out.read_text().strip() == f"exit-code={code}"
    root = ET.parse(tmp_path / "reports" / "lazycheck.xml").getroot()
    n_specs = len(specs.split())
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    assert len(suites) == n_specs
    assert (tmp_path / "reports" / "lazycheck.json").stat().st_size > 0
    assert summary.read_text().count("### lazycheck verify:") == n_specs
    assert "::notice" in res.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_action_refuses_a_bad_strict_value(action, tmp_path) -> None:
    env = {**os.environ, "INPUT_SPECS": "x.toml", "INPUT_ALPHA": "", "INPUT_STRICT": "maybe",
           "INPUT_ARGS": "", "INPUT_JUNIT": "j.xml", "INPUT_JSON": "j.json",
           "GITHUB_OUTPUT": str(tmp_path / "o")}  # fmt: skip
    res = subprocess.run(["bash", "-c", _verify_script(action)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 2 and "strict must be true or false" in res.stdout
