"""``lazycheck sweep`` end to end: grid syntax, metrics against independent computations,
failures, the store and resuming after a kill, the engines (processes, Dask) against --jobs 1,
the JSON schema, CSV and the figure."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from sweep_helpers import TINY_TANH

from lazycheck.errors import LazycheckError
from lazycheck.jsonio import dumps
from lazycheck.spec import load_spec
from lazycheck.sweep import run_sweep
from lazycheck.sweep.grid import parse_alpha, parse_seeds, parse_set_axis, split_values

ALPHAS = (3.0, 30.0)
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sweep") / "tiny.toml"
    path.write_text(TINY_TANH, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def serial(tiny: Path):
    """The reference: --jobs 1, stored under out/."""
    out = tiny.parent / "out"
    return out, run_sweep(tiny, alpha=ALPHAS, seeds=SEEDS, jobs=1, out=out)


def _schema() -> dict:
    return json.loads(
        resources.files("lazycheck").joinpath("schemas/sweep.schema.json").read_text()
    )


# ----------------------------------------------------------------------------- grid syntax


def test_value_lists_split_outside_brackets_and_quotes() -> None:
    assert split_values("[64,64],[128]") == ["[64,64]", "[128]"]
    assert split_values('"a,b",c') == ['"a,b"', "c"]
    assert parse_set_axis("model.widths=[64,64]") == ("model.widths", ([64, 64],))
    assert parse_set_axis("model.widths=[8],[16,16]") == ("model.widths", ([8], [16, 16]))
    assert parse_set_axis("model.activation=tanh,erf") == ("model.activation", ("tanh", "erf"))
    assert parse_seeds("0-2,5") == (0, 1, 2, 5)


def test_log_ranges_share_their_common_points() -> None:
    assert parse_alpha("1,10,100") == (1.0, 10.0, 100.0)
    coarse, fine = parse_alpha("1:1e4:5"), parse_alpha("1:1e4:9")
    assert coarse == (1.0, 10.0, 100.0, 1000.0, 10000.0)
    assert set(coarse) <= set(fine) and len(fine) == 9


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--alpha", "1:10"], "LO:HI:COUNT"),
        (["--alpha", "0,1"], "every alpha must be a finite number > 0"),
        (["--seeds", "3-1"], "is empty"),
        (["--set", "model.widths=[8],[8]"], "given twice"),
        (["--set", "model.activation=tanh,nope"], "model.activation"),
        (["--set", "flow.alpha=1,2"], "--alpha"),
        (["--jobs", "0"], "--jobs"),
        (["--plot", "x.gif"], "--plot"),
    ],
)
def test_bad_options_are_one_line_errors(tiny: Path, run_cli, args, fragment) -> None:
    jobs = [] if "--jobs" in args else ["--jobs", "1"]
    res = run_cli(["sweep", tiny, *args, *jobs, "--no-progress"])
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith("lazycheck: error: ") and fragment in res.stderr
    assert res.stderr.count("\n") == 1 and res.stdout == ""


def test_sweep_table_in_the_spec(tiny: Path, serial, write_file) -> None:
    text = TINY_TANH + '\n[sweep]\nalpha = "3:30:2"\nseeds = [0, 1]\nfit_alpha = "1:100"\n'
    spec = write_file("with_table.toml", text)
    res = run_sweep(spec, out=tiny.parent / "out", jobs=1)  # same configurations: read back
    assert [a.name for a in res.axes] == ["alpha", "seed"] and res.computed == 0
    assert res.fit_alpha == (1.0, 100.0)
    bad = write_file("bad.toml", TINY_TANH + "\n[sweep]\nalphas = [1]\n")
    with pytest.raises(LazycheckError, match=r"unknown key 'alphas' in \[sweep\]"):
        run_sweep(bad)
    bad = write_file("bad2.toml", TINY_TANH + "\n[sweep]\nalpha = 5\n")
    with pytest.raises(LazycheckError, match=r"\[sweep\]\.alpha: a list of numbers or a log"):
        run_sweep(bad)
    load_spec(spec)  # the other commands accept (and ignore) the table


# ----------------------------------------------------------------------------- metrics


def test_metrics_against_explicit_jacobians(tiny: Path, serial) -> None:
    """The end-of-run changes and the linearization gap, from full Jacobians."""
    from lazycheck.commands.simulate import simulate
    from lazycheck.problem import make_problem

    _, res = serial
    run = res.runs[0]
    spec = load_spec(tiny).with_settings(run["settings"])
    prob = make_problem(spec)
    sim = simulate(prob)
    J0, JT = prob.jacobian(prob.w0), prob.jacobian(sim.w_final)
    K0, KT = J0 @ J0.T, JT @ JT.T
    m = run["record"]["metrics"]
    assert m["jac_change_op"] == pytest.approx(
        np.linalg.norm(JT - J0, 2) / np.linalg.norm(J0, 2), rel=1e-7
    )
    assert m["jac_change_fro"] == pytest.approx(
        np.linalg.norm(JT - J0) / np.linalg.norm(J0), rel=1e-7
    )
    assert m["ker_change_op"] == pytest.approx(
        np.linalg.norm(KT - K0, 2) / np.linalg.norm(K0, 2), rel=1e-7
    )
    assert m["ker_change_fro"] == pytest.approx(
        np.linalg.norm(KT - K0) / np.linalg.norm(K0), rel=1e-7
    )
    a = sim.alpha
    taylor = prob.f(sim.w_final) - prob.f(prob.w0) - J0 @ (sim.w_final - prob.w0)
    assert sim.lin_gap[-1] == pytest.approx(a * np.linalg.norm(taylor), rel=1e-6)
    assert m["lin_gap"] >= sim.lin_gap[-1] * (1 - 1e-9)
    assert m["disp"] == pytest.approx(np.linalg.norm(sim.w_final - prob.w0), rel=1e-12)
    assert m["alpha_disp"] == pytest.approx(a * m["disp"])
    assert run["record"]["checks"]["theorem2.loss"]["status"] in ("pass", "unguaranteed")


def test_kinf_distance_uses_the_infinite_width_kernel(tiny: Path) -> None:
    import importlib
    import importlib.util

    if importlib.util.find_spec("lazycheck.models.infinite_width") is None:
        pytest.skip("lazycheck.models.infinite_width is not installed yet")
    iw = importlib.import_module("lazycheck.models.infinite_width")  # present: must import
    from lazycheck.problem import make_problem

    res = run_sweep(
        tiny, alpha=[3.0], sets={"model.widths": [[8], [32]], "model.activation": ["erf"]}, jobs=1
    )
    for run in res.runs:
        prob = make_problem(load_spec(tiny).with_settings(run["settings"]))
        kinf = iw.infinite_width_kernel(prob.spec.model, prob.X)
        ref = np.linalg.norm(prob.kernel(prob.w0) - kinf) / np.linalg.norm(kinf)
        assert run["record"]["metrics"]["kinf_dist"] == pytest.approx(ref, rel=1e-10)


def test_a_failing_configuration_is_recorded_and_counted(tiny: Path, run_cli) -> None:
    """gd without a learning rate cannot run: that configuration fails, the other runs."""
    res = run_cli(["sweep", tiny, "--alpha", "3", "--set", "flow.method=exp,gd", "--jobs", "1",
                   "-f", "json", "--no-progress"])  # fmt: skip
    assert res.exit_code == 11, res.output  # 10 + one failed
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, _schema())
    by_method = {r["coords"]["flow.method"]: r for r in doc["runs"]}
    assert by_method["exp"]["status"] == "ok"
    assert by_method["gd"]["status"] == "failed" and "lr" in by_method["gd"]["message"]
    assert doc["failed"] == 1 and doc["status"] == "failed"


# ----------------------------------------------------------------------------- outputs


def test_outputs_table_json_csv_plot(tiny: Path, serial, run_cli) -> None:
    out, res = serial
    assert res.computed == 4 and res.status == "ok"
    d = tiny.parent
    args = ["sweep", tiny, "--alpha", "3,30", "--seeds", "0-1", "--out", out, "--no-progress"]
    table = run_cli([*args, "--csv", d / "runs.csv", "--plot", d / "sweep.png"])
    assert table.exit_code == 0, table.output
    assert "metrics against alpha" in table.stdout and "laziness threshold" in table.stdout
    assert "0 computed, 4 read back" in table.stderr
    rows = list(csv.DictReader(io.StringIO((d / "runs.csv").read_text())))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    assert float(rows[0]["disp"]) == res.runs[0]["record"]["metrics"]["disp"]
    assert (d / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    js = run_cli([*args, "-f", "json"])
    doc = json.loads(js.stdout)
    jsonschema.validate(doc, _schema())
    assert js.stdout == dumps(res.to_dict())
    assert {s["metric"] for s in doc["slopes"]} >= {"disp", "gap", "B_prime"}


def test_one_more_alpha_computes_only_the_new_column(tiny: Path, serial) -> None:
    out, _ = serial
    res = run_sweep(tiny, alpha=(*ALPHAS, 300.0), seeds=SEEDS, jobs=1, out=out)
    assert (res.computed, res.cached) == (2, 4)


# ----------------------------------------------------------------------------- resume, engines


def test_resume_after_a_kill_gives_the_same_json(tiny: Path, serial) -> None:
    _, ref = serial
    out = tiny.parent / "killed"
    cmd = [sys.executable, "-m", "lazycheck", "sweep", str(tiny), "--alpha", "3,30"]
    cmd += ["--seeds", "0-1", "--jobs", "1", "--out", str(out), "-f", "json", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = out / "runs"

    def records() -> int:  # not the hidden temporaries (.KEY.json.XXXX.json) being written
        return sum(1 for p in runs.glob("*.json") if not p.name.startswith("."))

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if runs.is_dir() and records() >= 1:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = records()
    assert 1 <= stored < 4, stored  # killed halfway
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{4 - stored} computed, {stored} read back" in again.stderr
    assert again.stdout == dumps(ref.to_dict())


def test_process_pool_and_dask_give_the_same_results_as_one_job(tiny: Path, serial) -> None:
    distributed = pytest.importorskip("distributed")
    from threadpoolctl import threadpool_limits

    _, ref = serial
    expected = dumps(ref.to_dict())
    pooled = run_sweep(tiny, alpha=ALPHAS, seeds=SEEDS, jobs=2)
    assert pooled.engine == "processes" and pooled.computed == 4
    assert dumps(pooled.to_dict()) == expected
    with threadpool_limits(limits=None), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://",
        host="127.0.0.1", scheduler_port=0, dashboard_address=None,
    ) as cluster:  # fmt: skip
        by_dask = run_sweep(tiny, alpha=ALPHAS, seeds=SEEDS, dask=cluster.scheduler_address)
    assert by_dask.engine == "dask" and by_dask.computed == 4
    assert dumps(by_dask.to_dict()) == expected


def test_dask_without_a_scheduler_is_a_one_line_error(tiny: Path, run_cli) -> None:
    pytest.importorskip("distributed")
    res = run_cli(["sweep", tiny, "--alpha", "3", "--dask", "tcp://127.0.0.1:9", "--no-progress"])
    assert res.exit_code == 2 and "--dask" in res.stderr, res.output


def test_threshold_bisection_on_a_real_network(tiny: Path) -> None:
    """Not lazy at alpha = 0.01, lazy at 1: bisection in log alpha narrows the bracket."""
    res = run_sweep(tiny, alpha=[0.01, 1.0], jobs=1, threshold=True, threshold_rtol=0.5)
    (th,) = res.thresholds
    assert th.status == "bracketed" and th.refined
    assert 0.01 <= th.low < th.alpha <= 1.0 and th.alpha / th.low <= 1.5
    for alpha, lazy in th.points:  # every point tried sits on its side of the bracket
        assert lazy == (alpha >= th.alpha)
    assert res.computed == 2 + len(th.points)
    assert th.looseness_certified == pytest.approx(th.alpha_min_certified / th.alpha)
    doc = res.to_dict()
    jsonschema.validate(doc, _schema())
    assert doc["thresholds"][0]["bisection"][0]["alpha"] == pytest.approx(0.1)


def test_kinf_distance_with_a_stand_in_kernel(tiny: Path, monkeypatch) -> None:
    """The metric calls infinite_width_kernel(spec.model, X): with K_inf = 2 K0 it is 1/2
    exactly; a LazycheckError from it (an unsupported model) is nan with the message noted."""
    import importlib.machinery
    import types

    from lazycheck.problem import make_problem
    from lazycheck.sweep.metrics import run_config

    name = "lazycheck.models.infinite_width"
    fake = types.ModuleType(name)
    fake.__spec__ = importlib.machinery.ModuleSpec(name, None)

    def kernel(model_spec, X):
        spec = load_spec(tiny).with_settings({"model.widths": list(model_spec.widths)})
        prob = make_problem(spec)
        assert np.array_equal(X, prob.X)
        return 2.0 * prob.kernel(prob.w0)

    fake.infinite_width_kernel = kernel
    monkeypatch.setitem(sys.modules, name, fake)
    rec = run_config(load_spec(tiny))
    assert rec["metrics"]["kinf_dist"] == pytest.approx(0.5, rel=1e-12)

    def unsupported(model_spec, X):
        raise LazycheckError("no closed form for this model")

    fake.infinite_width_kernel = unsupported
    rec = run_config(load_spec(tiny))
    assert math.isnan(rec["metrics"]["kinf_dist"]) and rec["status"] == "ok"
    assert any("no closed form" in note for note in rec["notes"])


def test_the_key_follows_the_spec_the_data_and_a_python_model_file(tmp_path: Path) -> None:
    """No run: the key changes with any setting, the data file's bytes and the model's file."""
    import shutil

    from lazycheck.sweep.store import config_key

    samples = Path(__file__).resolve().parent.parent / "samples"
    for name in ("numpy_model.toml", "numpy_model.py", "iris.toml", "iris.csv"):
        shutil.copy(samples / name, tmp_path / name)
    model = load_spec(tmp_path / "numpy_model.toml")
    key = config_key(model, None, False)
    assert key == config_key(load_spec(tmp_path / "numpy_model.toml"), None, False)
    assert key != config_key(model.with_settings({"flow.alpha": 3.0}), None, False)
    assert key != config_key(model, None, True)
    with (tmp_path / "numpy_model.py").open("a") as fh:
        fh.write("\n# edited\n")
    assert key != config_key(model, None, False)
    iris = load_spec(tmp_path / "iris.toml")
    before = config_key(iris, None, False)
    with (tmp_path / "iris.csv").open("a") as fh:
        fh.write("\n")
    assert before != config_key(iris, None, False)
