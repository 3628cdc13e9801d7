"""``lazycheck verify``: every status reached by a real spec, every exit code, and the
reports parsed back."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest
from helpers import verified_sample

from lazycheck.commands.reports import to_github, to_json, to_junit
from lazycheck.commands.verify import VerifyReport, run_verify
from lazycheck.problem import load_problem

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture(scope="module")
def reports() -> dict[str, VerifyReport]:
    names = [
        "two_layer_tanh", "small_alpha", "narrow_plateau", "wrong_beta", "relu", "p_le_n",
        "uncentered",
    ]  # fmt: skip
    return {name: verified_sample(name) for name in names}


def _schema() -> dict:
    text = resources.files("lazycheck").joinpath("schemas/verify.schema.json").read_text()
    return json.loads(text)


def test_hypothesis_holds_and_all_pass(reports) -> None:
    rep = reports["two_layer_tanh"]
    assert rep.status == "pass" and rep.hypotheses_met
    assert set(rep.counts()) >= {"pass"} and rep.counts()["pass"] == len(rep.checks)
    assert rep.exit_code() == 0 and rep.exit_code(strict=True) == 0
    # the lazy-limit distance is reported and small at this alpha
    assert 0 <= rep.lazy_gap < 1e-6


def test_hypothesis_unmet_conclusions_hold_anyway(reports) -> None:
    rep = reports["small_alpha"]
    assert rep.status == "unguaranteed"
    assert rep.check("hypothesis.alpha").status == "unmet"
    ung = [c for c in rep.checks if c.status == "unguaranteed"]
    assert ung and all(c.held for c in ung)
    # the linear model's bounds need only the rank condition: still guaranteed, and pass
    assert rep.check("lemma4.linear").status == "pass"
    assert rep.exit_code() == 0 and rep.exit_code(strict=True) == 1


def test_conclusion_violated_because_hypothesis_unmet(reports) -> None:
    rep = reports["narrow_plateau"]
    loss = rep.check("theorem2.loss")
    assert loss.status == "unguaranteed" and loss.held is False
    assert loss.observed > 100 * loss.bound  # a plateau, not a rounding issue
    assert "violated anyway" in rep.message
    assert rep.exit_code() == 0 and rep.exit_code(strict=True) == 1


def test_wrong_constant_is_a_loud_fail(reports) -> None:
    rep = reports["wrong_beta"]
    assert rep.status == "fail" and rep.hypotheses_met
    assert rep.check("theorem2.loss").status == "fail"
    assert rep.exit_code() == 1
    assert "FAILED" in rep.message


def test_relu_beta_infinite(reports) -> None:
    rep = reports["relu"]
    assert rep.check("assumption.beta_finite").status == "unmet"
    assert rep.simulation is not None and rep.simulation.method == "gd"
    assert "gradient descent" in rep.flow_note
    assert not any(c.status == "fail" for c in rep.checks)
    assert rep.exit_code() == 0


def test_p_le_n_hypotheses_unmet_and_linear_bounds_unguaranteed(reports) -> None:
    rep = reports["p_le_n"]
    assert rep.check("assumption.rank").status == "unmet"
    assert rep.check("assumption.overparameterized").status == "unmet"
    # with rank J0 < n even the linear model's bounds are not guaranteed
    assert rep.check("lemma4.linear").status == "unguaranteed"
    assert rep.exit_code() == 0 and rep.exit_code(strict=True) == 1


def test_sigma_min_zero_without_horizon_skips_trajectories(write_file) -> None:
    text = (SAMPLES / "p_le_n.toml").read_text().replace("horizon = 50.0", "")
    rep = run_verify(load_problem(write_file("p_le_n_nohorizon.toml", text)))
    assert rep.simulation is None
    assert rep.check("theorem2.loss").status == "skipped"
    assert "horizon" in rep.check("theorem2.loss").message
    assert "no conclusion could be checked" in rep.message


def test_uncentered_no_alpha_is_feasible(reports) -> None:
    rep = reports["uncentered"]
    c = rep.check("hypothesis.alpha")
    assert c.status == "unmet" and "no alpha" in c.message
    assert rep.bound.status == "infeasible"


def test_every_status_is_reached(reports) -> None:
    seen = {c.status for rep in reports.values() for c in rep.checks}
    assert seen == {"pass", "fail", "unguaranteed", "skipped", "unmet"}


def test_json_report_validates_and_round_trips(reports) -> None:
    schema = _schema()
    for rep in reports.values():
        d = json.loads(to_json(rep))
        jsonschema.validate(d, schema)
        assert [c["id"] for c in d["checks"]] == [c.id for c in rep.checks]
        for c, back in zip(rep.checks, d["checks"], strict=True):
            assert back["status"] == c.status
            if isinstance(back["observed"], float):
                assert back["observed"] == c.observed
        assert d["exit_code"] == rep.exit_code()
        jsonschema.validate(
            d["bound"],
            json.loads(
                resources.files("lazycheck").joinpath("schemas/bound.schema.json").read_text()
            ),
        )


def test_schema_rejects_a_malformed_report(reports) -> None:
    d = json.loads(to_json(reports["two_layer_tanh"]))
    d["checks"][0]["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, _schema())


def test_junit_one_testcase_per_check(reports) -> None:
    rep = reports["wrong_beta"]
    root = ET.fromstring(to_junit(rep))
    cases = root.findall("testcase")
    assert [c.get("name") for c in cases] == [c.id for c in rep.checks]
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {c.id for c in rep.checks if c.status == "fail"}
    assert int(root.get("failures")) == len(failed)
    skipped = {c.get("name") for c in cases if c.find("skipped") is not None}
    assert skipped == {c.id for c in rep.checks if c.status in ("skipped", "unguaranteed", "unmet")}


def test_github_annotations_and_summary(reports, tmp_path, monkeypatch) -> None:
    from lazycheck.commands.reports import write_github_summary

    rep = reports["wrong_beta"]
    text = to_github(rep)
    errors = [ln for ln in text.splitlines() if ln.startswith("::error")]
    assert len(errors) == rep.counts()["fail"]
    assert text.splitlines()[-1].startswith("::notice")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    write_github_summary(rep)
    md = summary.read_text()
    assert "| `theorem2.loss` | fail |" in md
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    write_github_summary(rep)  # outside Actions: no file, no error


@pytest.mark.parametrize(
    ("sample", "args", "code"),
    [
        ("two_layer_tanh", [], 0),
        ("small_alpha", [], 0),
        ("small_alpha", ["--strict"], 1),
        ("wrong_beta", [], 1),
    ],
)
def test_cli_exit_codes(run_cli, sample, args, code, tmp_path) -> None:
    out = tmp_path / "r.xml"
    res = run_cli(["verify", SAMPLES / f"{sample}.toml", "--no-progress", *args,
                   "--format", "junit", "-o", out])  # fmt: skip
    assert res.exit_code == code, res.output
    ET.parse(out)  # a well-formed report was written atomically
    assert res.stdout == ""


def test_cli_table_and_json(run_cli) -> None:
    res = run_cli(["verify", SAMPLES / "wrong_beta.toml", "--no-progress"])
    assert res.exit_code == 1
    assert "FAIL" in res.stdout and "verdict" in res.stdout
    res = run_cli(["verify", SAMPLES / "two_layer_tanh.toml", "-f", "json", "--no-progress"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["status"] == "pass"


def test_cli_usage_error_is_exit_2_and_writes_nothing(run_cli, one_line_error, tmp_path) -> None:
    out = tmp_path / "never.json"
    res = run_cli(["verify", tmp_path / "missing.toml", "-f", "json", "-o", out])
    one_line_error(res, "missing.toml", "does not exist")
    assert not out.exists()


def test_solver_failure_is_exit_2(run_cli, monkeypatch, tmp_path) -> None:
    """A solver that reports failure makes the numbers untrustworthy: status error, exit 2,
    and the JUnit report carries an <error>."""
    import dataclasses

    import lazycheck.commands.simulate as sim_mod

    real = sim_mod.simulate

    def failing(problem, **kw):
        res = real(problem, **kw)
        return dataclasses.replace(res, success=False, status=-1, message="step size collapsed")

    monkeypatch.setattr(sim_mod, "simulate", failing)
    rep = run_verify(load_problem(SAMPLES / "two_layer_tanh.toml"))
    assert rep.status == "error" and rep.exit_code() == 2
    assert "cannot be trusted" in rep.message and "step size collapsed" in rep.message
    root = ET.fromstring(to_junit(rep))
    assert root.find("testcase/error") is not None
    out = tmp_path / "r.json"
    res = run_cli(["verify", SAMPLES / "two_layer_tanh.toml", "--no-progress", "-f", "json",
                   "-o", out])  # fmt: skip
    assert res.exit_code == 2
    assert json.loads(out.read_text())["status"] == "error"


# ----------------------------------------------------------------------------- wrong verdicts


def _verify(run_cli, spec, *args):
    return run_cli(["verify", spec, "--no-progress", "-f", "json", *args])


def test_rank_deficiency_is_a_verdict_not_a_numerical_failure(run_cli) -> None:
    # iris with --seed 0 draws near-duplicate inputs: sigma_min ~ 1e-16 > 0 but rank J0 < n.
    # The old verify exited 2 ("give --horizon"); it is a property of the problem.
    res = _verify(run_cli, SAMPLES / "iris.toml", "--seed", "0")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    checks = {c["id"]: c for c in d["checks"]}
    assert checks["assumption.rank"]["status"] == "unmet"
    assert d["status"] == "unguaranteed" and "assumption.rank" in d["message"]
    loss = checks["theorem2.loss"]
    assert loss["status"] == "skipped" and "Assumption 1 fails" in loss["message"]
    assert _verify(run_cli, SAMPLES / "iris.toml", "--seed", "0", "--strict").exit_code == 1


def test_overflowing_constants_are_unmet_not_a_pass(run_cli) -> None:
    args = ["--set", "data.noise=1e300", "--alpha", "1"]
    res = _verify(run_cli, SAMPLES / "two_layer_tanh.toml", *args)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["status"] == "unguaranteed"
    checks = {c["id"]: c for c in d["checks"]}
    assert checks["hypothesis.radius"]["status"] == "unmet"
    assert not any(c["status"] == "pass" for c in d["checks"] if c["id"].startswith("theorem2"))
    assert _verify(run_cli, SAMPLES / "two_layer_tanh.toml", "--strict", *args).exit_code == 1


def test_small_fixed_radius_gates_the_verdict(run_cli) -> None:
    # beta certified on ||w - w0|| <= 0.001 < B: at alpha just above the alpha_min computed
    # from B (the old verdict: "applies", verify --strict exit 0) the flow may leave beta's ball
    prob = load_problem(SAMPLES / "two_layer_tanh.toml", settings={"check.radius": 0.001})
    rep = run_verify(prob)
    b = rep.bound
    beta = b.betas["certified"]
    smin, smax = b.spectrum.sigma_min, b.spectrum.sigma_max
    from lazycheck.hypothesis import hypothesis_kappa, solve_alpha

    f0 = prob.linearize(prob.w0).f
    old = solve_alpha(hypothesis_kappa(beta.value, smin, smax), f0, prob.y).alpha_min
    assert b.solutions["certified"].alpha_min > 10 * old
    args = ["--set", "check.radius=0.001", "--alpha", f"{1.01 * old:.17g}", "--set",
            "flow.method=exp"]  # fmt: skip
    res = _verify(run_cli, SAMPLES / "two_layer_tanh.toml", *args)
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    checks = {c["id"]: c for c in d["checks"]}
    assert checks["beta.radius_consistent"]["status"] == "unmet"
    assert checks["beta.radius_consistent"]["role"] == "hypothesis"
    assert checks["hypothesis.alpha"]["status"] == "unmet"
    assert "gradient descent" not in d["message"]  # an exp run: never call it descent
    strict = _verify(run_cli, SAMPLES / "two_layer_tanh.toml", "--strict", *args)
    assert strict.exit_code == 1


def test_saturated_tanh_verdict_rests_on_a_certified_beta(run_cli) -> None:
    res = _verify(
        run_cli, SAMPLES / "two_layer_tanh.toml", "--set", "model.sigma_w=1e6", "--set",
        "model.widths=[40]",
    )  # fmt: skip
    d = json.loads(res.stdout)
    ids = {c["id"]: c for c in d["checks"]}
    assert "exact" not in ids["assumption.beta_finite"]["message"]
    assert ids["beta.radius_consistent"]["status"] == "pass"
    assert res.exit_code == 0


def test_gradient_descent_verdict_only_for_gradient_descent(reports) -> None:
    for rep in reports.values():
        if "gradient descent" in rep.message:
            assert rep.simulation is not None and rep.simulation.method == "gd"
