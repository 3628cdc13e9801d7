"""The output transaction: nothing replaced until every output rendered, temporaries removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lazycheck.errors import LazycheckError
from lazycheck.outputs import Outputs, atomic_write, input_paths
from lazycheck.problem import load_problem


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in root.iterdir()}


def test_a_failing_render_leaves_every_target_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("old a")
    outputs = Outputs()
    outputs.declare(tmp_path / "a.txt", "--a")
    outputs.declare(tmp_path / "b.txt", "--b")

    def broken(_tmp: Path) -> None:
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError), outputs.transaction():
        outputs.stage("--a", "new a")
        outputs.stage("--b", broken)
        outputs.commit()
    assert _files(tmp_path) == {"a.txt": b"old a"}


def test_commit_moves_every_output_at_once(tmp_path: Path) -> None:
    outputs = Outputs()
    outputs.declare(tmp_path / "a.txt", "--a")
    outputs.declare(tmp_path / "b.bin", "--b")
    with outputs.transaction():
        outputs.stage("--a", "text")
        outputs.stage("--b", b"\x00\x01")
        assert sorted(n for n in os.listdir(tmp_path) if not n.startswith(".")) == []
        outputs.commit()
    assert _files(tmp_path) == {"a.txt": b"text", "b.bin": b"\x00\x01"}


def test_declared_outputs_are_checked_against_inputs_and_each_other(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parent.parent / "samples" / "iris.toml"
    prob = load_problem(spec)
    paths = input_paths(spec, prob.spec)
    assert spec in paths and any(p.name == "iris.csv" for p in paths)
    outputs = Outputs()
    outputs.declare(prob.spec.data.path, "-o")
    with pytest.raises(LazycheckError, match="input of this run"):
        outputs.check_inputs(paths)
    outputs = Outputs()
    outputs.declare(tmp_path / "x.npz", "--save", (".npz",))
    with pytest.raises(LazycheckError, match="--save"):
        outputs.declare(tmp_path / "." / "x.npz", "-o")
    with pytest.raises(LazycheckError, match="unsupported file type"):
        outputs.declare(tmp_path / "x.txt", "--plot", (".png",))


def test_atomic_write_reports_the_users_path(tmp_path: Path) -> None:
    target = tmp_path / "r.json"

    def full(tmp: Path) -> None:
        raise OSError(28, "No space left on device", str(tmp))

    with pytest.raises(LazycheckError) as info:
        atomic_write(target, full)
    assert str(target) in str(info.value) and ".r.json." not in str(info.value)
    assert list(tmp_path.iterdir()) == []
