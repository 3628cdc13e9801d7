"""``simulate`` end to end: its numbers against independent computations, the files it writes
(npz, csv, figures) read back, and the command line."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lazycheck.commands.simulate import (
    ARRAY_FIELDS,
    GRID_FIELDS,
    SimulationResult,
    load_npz,
    save_csv,
    save_npz,
    simulate,
)
from lazycheck.errors import LazycheckError
from lazycheck.jsonio import dumps
from lazycheck.numerics.flow import exponential
from lazycheck.plotting import plot_run
from lazycheck.problem import Problem, load_problem

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "two_layer_tanh.toml"
ALPHA = 100.0


@pytest.fixture(scope="module")
def prob() -> Problem:
    return load_problem(SAMPLE, alpha=ALPHA)


@pytest.fixture(scope="module")
def run(prob: Problem) -> SimulationResult:
    result = simulate(prob)
    assert result.success, result.message
    return result


def test_sample_run_against_independent_computations(prob: Problem, run: SimulationResult):
    fs = prob.spec.flow
    J0 = prob.jacobian(prob.w0)
    s = np.linalg.svd(J0, compute_uv=False)
    smin, smax = s[-1], s[0]
    assert run.sigma_min == pytest.approx(smin, rel=1e-10)
    assert run.sigma_max == pytest.approx(smax, rel=1e-12)
    loss0 = prob.loss(prob.w0)
    assert math.isclose(run.L0, loss0, rel_tol=1e-14)
    # grid: 0, then n_times log-spaced times up to the default horizon
    assert run.t.shape == (fs.n_times + 1,) and run.t[0] == 0.0
    assert np.all(np.diff(run.t) > 0)
    t_end = 2 * fs.decay / (ALPHA**2 * smin**2)
    assert run.t[-1] == pytest.approx(t_end, rel=1e-10) and run.horizon == run.t[-1]
    ratios = run.t[2:] / run.t[1:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)
    assert run.bound[-1] == pytest.approx(loss0 * math.exp(-fs.decay), rel=1e-9)
    assert run.B_prime == pytest.approx(3 * math.sqrt(8 * smax**2 * loss0) / (ALPHA * smin**2))
    assert run.B_prime_lin == pytest.approx(math.sqrt(2 * smax**2 * loss0) / (ALPHA * smin**2))
    # the last point, recomputed from the final weights
    assert run.loss[0] == pytest.approx(loss0, rel=1e-14)
    assert run.loss[-1] == pytest.approx(prob.loss(run.w_final), rel=1e-12)
    assert run.disp[-1] == pytest.approx(np.linalg.norm(run.w_final - prob.w0), rel=1e-12)
    assert run.disp_lin[-1] == pytest.approx(np.linalg.norm(run.u_final - prob.w0), rel=1e-9)
    Jw = prob.jacobian(run.w_final)
    sw = np.linalg.svd(Jw, compute_uv=False)
    # kernel eigenvalues: sigma_min^2 carries an absolute error ~ n eps sigma_max^2
    assert run.sigma_min_t[-1] == pytest.approx(sw[-1], rel=1e-6)
    assert run.sigma_max_t[-1] == pytest.approx(sw[0], rel=1e-12)
    assert run.t_check[-1] == run.t[-1] and run.t_check.shape == (fs.checkpoints,)
    assert run.jdiff[-1] == pytest.approx(np.linalg.norm(Jw - J0, 2), rel=1e-8)
    f0_u = prob.f(prob.w0) + J0 @ (run.u_final - prob.w0)  # the linear model at u_final
    gap = np.linalg.norm(ALPHA * prob.f(run.w_final) - ALPHA * f0_u)
    assert run.gap[-1] == pytest.approx(gap, rel=1e-6, abs=1e-14)
    # what Theorem 2 and Lemma 6 say, seen on this run
    pos = run.t > 0
    assert np.all(run.loss[pos] <= run.bound[pos]) and np.all(run.loss_lin[pos] <= run.bound[pos])
    assert np.max(run.disp) <= run.B_prime and np.max(run.disp_lin) <= run.B_prime_lin
    assert np.all(run.sigma_min_t >= run.sigma_min / 2)
    assert np.all(run.sigma_max_t <= 1.5 * run.sigma_max)
    assert run.final_loss == run.loss[-1] and run.final_loss_lin == run.loss_lin[-1]
    assert run.nfev > run.n_steps > 0 and run.gd_stability_limit is None


def test_to_dict_is_strict_json_and_labels_every_number(run: SimulationResult) -> None:
    d = json.loads(dumps(run.to_dict()))
    assert d["success"] is True and d["settings"]["method"] == "exp"
    assert set(d["arrays"]) == set(ARRAY_FIELDS)
    assert len(d["arrays"]["loss"]) == run.t.shape[0]
    for entry in d["summary"].values():
        assert entry["kind"] and entry["quantity"]
    assert d["summary"]["final_loss_lin"]["kind"] == "exact (closed form)"
    assert d["summary"]["final_loss"]["kind"].startswith("computed, exp solver rtol 1e-06")
    assert d["array_kinds"]["loss_lin"] == "exact (closed form)"


def test_render_prints_a_table(run: SimulationResult) -> None:
    from rich.console import Console

    buf = io.StringIO()
    run.render(Console(file=buf, width=200, no_color=True))
    text = buf.getvalue()
    assert "exact (closed form)" in text and "computed, exp solver rtol 1e-06" in text
    assert "B'" in text and "sigma_min(J0)" in text


def test_npz_round_trip_keeps_every_array(prob: Problem, run: SimulationResult, tmp_path):
    path = tmp_path / "run.npz"
    save_npz(run, prob, path)
    back = load_npz(path)
    for f in dataclasses.fields(SimulationResult):
        a, b = getattr(run, f.name), getattr(back, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b), f.name
        else:
            assert a == b and type(a) is type(b), f.name
    with np.load(path) as raw:
        for name in ("X", "y", "w0"):
            np.testing.assert_array_equal(raw[name], getattr(prob, name))
        for name in (*ARRAY_FIELDS, "alpha", "L0", "sigma_min", "B_prime"):
            assert name in raw.files
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_csv_parses_back_exactly(run: SimulationResult, tmp_path) -> None:
    path = tmp_path / "run.csv"
    save_csv(run, path)
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == run.t.shape[0]
    for name in GRID_FIELDS:
        np.testing.assert_array_equal([float(r[name]) for r in rows], getattr(run, name))
    np.testing.assert_array_equal([float(r["tau"]) for r in rows], run.tau)
    jd = {float(r["t"]): r["jdiff"] for r in rows}
    assert [float(jd[t]) for t in run.t_check] == run.jdiff.tolist()
    assert sum(1 for v in jd.values() if v == "") == run.t.shape[0] - run.t_check.shape[0]


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".png", b"\x89PNG"), (".svg", b"<"), (".pdf", b"%PDF")]
)
def test_plot_files_are_written(run: SimulationResult, tmp_path, suffix: str, magic: bytes):
    path = tmp_path / f"run{suffix}"
    plot_run(run, path)
    data = path.read_bytes()
    assert len(data) > 5000 and data.startswith(magic)
    if suffix == ".svg":
        assert b"<svg" in data[:2000]


def test_plot_rejects_an_unknown_suffix(run: SimulationResult, tmp_path) -> None:
    with pytest.raises(LazycheckError, match=r"\.jpg"):
        plot_run(run, tmp_path / "run.jpg")
    assert list(tmp_path.iterdir()) == []


def test_progress_task_reaches_the_end(prob: Problem) -> None:
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(file=io.StringIO()), disable=True) as bar:
        result = simulate(prob, decay=2.0, progress=bar)
        (task,) = bar.tasks
    assert result.success and task.completed == task.total == result.t.shape[0] - 1


def test_rank_deficient_jacobian_needs_a_horizon(prob: Problem) -> None:
    X = np.vstack([prob.X, prob.X[:1]])  # a duplicate input: sigma_min(J0) = 0
    y = np.concatenate([prob.y, prob.y[:1]])
    dup = dataclasses.replace(prob, X=X, y=y)
    with pytest.raises(LazycheckError, match="horizon") as info:
        simulate(dup)
    assert "\n" not in str(info.value)
    result = simulate(dup, horizon=1e-4)
    assert result.success and result.t[-1] == pytest.approx(1e-4)
    assert result.B_prime == math.inf and result.B_prime_lin == math.inf
    assert result.sigma_min < 1e-12 * result.sigma_max


def test_a_failed_run_keeps_what_it_recorded(prob, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(exponential, "EXP_MAX_STEPS", 40)
    result = simulate(prob)
    assert not result.success and result.status == -1
    assert "step budget" in result.message
    k = result.t.shape[0]
    assert 1 < k < prob.spec.flow.n_times + 1
    for name in GRID_FIELDS:
        assert getattr(result, name).shape == (k,), name
        assert np.all(np.isfinite(getattr(result, name))), name
    assert np.all(result.t_check <= result.t[-1])
    assert result.disp[-1] == pytest.approx(np.linalg.norm(result.w_final - prob.w0))
    save_npz(result, prob, tmp_path / "partial.npz")
    assert not load_npz(tmp_path / "partial.npz").success


# ----------------------------------------------------------------------------- command line


def test_cli_simulate_writes_every_file(run_cli, tmp_path) -> None:
    npz, csv_path, png = tmp_path / "r.npz", tmp_path / "r.csv", tmp_path / "r.png"
    res = run_cli(
        [
            "simulate",
            SAMPLE,
            "--alpha",
            "100",
            "--save",
            npz,
            "--csv",
            csv_path,
            "--plot",
            png,
            "--no-progress",
        ]
    )
    assert res.exit_code == 0, res.stderr
    assert "exact (closed form)" in res.stdout
    assert npz.stat().st_size > 0 and csv_path.stat().st_size > 0 and png.stat().st_size > 0
    back = load_npz(npz)
    assert back.success and back.alpha == 100.0 and back.method == "exp"


def test_cli_json_output(run_cli, tmp_path) -> None:
    out = tmp_path / "r.json"
    res = run_cli(
        [
            "simulate",
            SAMPLE,
            "--alpha",
            "100",
            "--decay",
            "2",
            "--format",
            "json",
            "-o",
            out,
            "--no-progress",
        ]
    )
    assert res.exit_code == 0, res.stderr
    d = json.loads(out.read_text())
    assert d["success"] and d["summary"]["alpha"]["value"] == 100.0


def test_cli_rejects_a_bad_plot_suffix_before_writing_anything(run_cli, tmp_path) -> None:
    res = run_cli(
        [
            "simulate",
            SAMPLE,
            "--save",
            tmp_path / "r.npz",
            "--plot",
            tmp_path / "r.jpg",
            "--no-progress",
        ]
    )
    assert res.exit_code == 2
    assert "--plot" in res.stderr and ".jpg" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_gd_with_too_large_lr_is_one_line_exit_2(run_cli) -> None:
    res = run_cli(
        ["simulate", SAMPLE, "--alpha", "100", "--method", "gd", "--lr", "1", "--no-progress"]
    )
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--lr" in lines[0] and "stability limit" in lines[0]
    assert "Traceback" not in res.stderr


def test_cli_failed_run_exits_2_with_the_message(run_cli, monkeypatch) -> None:
    monkeypatch.setattr(exponential, "EXP_MAX_STEPS", 40)
    res = run_cli(["simulate", SAMPLE, "--alpha", "100", "--no-progress"])
    assert res.exit_code == 2
    assert "step budget" in res.stderr


def test_auto_method_uses_gd_for_a_non_smooth_model() -> None:
    relu = load_problem(Path(__file__).resolve().parent.parent / "samples" / "relu.toml")
    res = simulate(relu)
    assert res.success and res.method == "gd"
    lam_max = res.sigma_max**2
    assert res.lr == pytest.approx(1.0 / (res.alpha**2 * lam_max), rel=1e-12)
    assert res.gd_stability_limit == pytest.approx(2.0 * res.lr, rel=1e-12)
    assert "not smooth" in res.note and "gradient descent" in res.note
    # the linear flow stays exact; gd decreases the loss
    assert res.loss[-1] < 1e-3 * res.loss[0]


def test_auto_method_is_exp_for_a_smooth_model(run: SimulationResult) -> None:
    assert run.method == "exp" and run.note == ""
