"""Spec parsing: defaults, every error as one line through the CLI and as LazycheckError in the
Python API, overrides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lazycheck.errors import LazycheckError
from lazycheck.spec import (
    CheckSpec,
    DataSpec,
    FlowSpec,
    ModelSpec,
    Spec,
    load_spec,
    parse_spec,
)

GOOD_DATA = '[data]\nsource = "synthetic"\nn = 5\ndim = 3\n'
GOOD_MODEL = "[model]\nwidths = [8]\n"
GOOD = GOOD_DATA + GOOD_MODEL


# Each case: (id, spec text, fragments the one-line message must hold). The spec file is
# written as `spec.toml`; every message must name it.
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("missing-data", GOOD_MODEL, ("missing table [data]",)),
    ("missing-model", GOOD_DATA, ("missing table [model]",)),
    ("data-not-a-table", 'data = "x.csv"\n' + GOOD_MODEL, ("[data] must be a table",)),
    (
        "unknown-top-level-key",
        "seeds = 3\n" + GOOD,
        ("unknown key 'seeds' in top level", "allowed keys: check, data, flow, model, name, seed"),
    ),
    (
        "unknown-data-key",
        GOOD_DATA + "points = 4\n" + GOOD_MODEL,
        ("unknown key 'points' in [data]", "allowed keys:", "dim", "teacher_width"),
    ),
    (
        "key-of-another-source",
        '[data]\nsource = "csv"\npath = "spec.toml"\nfeatures = ["a"]\ntarget = "b"\nn = 4\n'
        + GOOD_MODEL,
        ("unknown key 'n' in [data]", "allowed keys: features, path, seed, source, standardize"),
    ),
    (
        "unknown-model-key",
        GOOD + "depth = 3\n",
        ("unknown key 'depth' in [model]", "allowed keys:", "activation", "widths"),
    ),
    (
        "unknown-flow-key",
        GOOD + "[flow]\nalpah = 10.0\n",
        ("unknown key 'alpah' in [flow]", "allowed keys:", "alpha", "method"),
    ),
    (
        "unknown-check-key",
        GOOD + "[check]\nbeta_sample = 4\n",
        ("unknown key 'beta_sample' in [check]", "allowed keys:", "beta_samples"),
    ),
    ("seed-wrong-type", 'seed = "one"\n' + GOOD, ("seed: must be a non-negative integer",)),
    ("seed-negative", "seed = -1\n" + GOOD, ("seed: must be a non-negative integer, got -1",)),
    ("name-wrong-type", "name = 3\n" + GOOD, ("name: must be a string",)),
    (
        "missing-source",
        "[data]\nn = 5\n" + GOOD_MODEL,
        ("[data].source: missing", "synthetic, csv, npy, npz"),
    ),
    (
        "unknown-source",
        '[data]\nsource = "parquet"\n' + GOOD_MODEL,
        ("[data].source: 'parquet' is not allowed", "synthetic, csv, npy, npz"),
    ),
    (
        "n-not-integer",
        GOOD_DATA.replace("n = 5", "n = 5.5") + GOOD_MODEL,
        ("[data].n: must be an integer, got 5.5",),
    ),
    (
        "n-not-positive",
        GOOD_DATA.replace("n = 5", "n = 0") + GOOD_MODEL,
        ("[data].n: must be > 0, got 0",),
    ),
    (
        "unknown-inputs",
        GOOD_DATA + 'inputs = "cube"\n' + GOOD_MODEL,
        ("[data].inputs: 'cube' is not allowed", "sphere, gaussian"),
    ),
    (
        "unknown-targets",
        GOOD_DATA + 'targets = "xor"\n' + GOOD_MODEL,
        ("[data].targets: 'xor' is not allowed", "teacher, smooth, random_labels"),
    ),
    ("noise-negative", GOOD_DATA + "noise = -0.1\n" + GOOD_MODEL, ("[data].noise: must be >= 0",)),
    (
        "standardize-not-bool",
        GOOD_DATA + 'standardize = "yes"\n' + GOOD_MODEL,
        ("[data].standardize: must be true or false, got 'yes'",),
    ),
    (
        "subsample-zero",
        GOOD_DATA + "subsample = 0\n" + GOOD_MODEL,
        ("[data].subsample: must be > 0",),
    ),
    (
        "path-does-not-exist",
        '[data]\nsource = "csv"\npath = "nowhere.csv"\nfeatures = ["a"]\ntarget = "b"\n'
        + GOOD_MODEL,
        ("[data].path: file 'nowhere.csv' does not exist",),
    ),
    (
        "path-is-a-directory",
        '[data]\nsource = "npz"\npath = "."\n' + GOOD_MODEL,
        ("[data].path: '.' is a directory",),
    ),
    (
        "path-missing",
        '[data]\nsource = "npz"\n' + GOOD_MODEL,
        ("[data].path: missing",),
    ),
    (
        "path-wrong-type",
        '[data]\nsource = "npz"\npath = 3\n' + GOOD_MODEL,
        ("[data].path: must be a string, got 3",),
    ),
    (
        "csv-features-missing",
        '[data]\nsource = "csv"\npath = "spec.toml"\ntarget = "b"\n' + GOOD_MODEL,
        ("[data].features: missing",),
    ),
    (
        "csv-features-not-a-list",
        '[data]\nsource = "csv"\npath = "spec.toml"\nfeatures = "a"\ntarget = "b"\n' + GOOD_MODEL,
        ("[data].features: must be a non-empty list of column names",),
    ),
    (
        "csv-target-missing",
        '[data]\nsource = "csv"\npath = "spec.toml"\nfeatures = ["a"]\n' + GOOD_MODEL,
        ("[data].target: missing",),
    ),
    (
        "csv-target-is-a-feature",
        '[data]\nsource = "csv"\npath = "spec.toml"\nfeatures = ["a", "b"]\ntarget = "b"\n'
        + GOOD_MODEL,
        ("[data].target: 'b' is also a feature column",),
    ),
    (
        "npy-target-path-missing",
        '[data]\nsource = "npy"\npath = "spec.toml"\n' + GOOD_MODEL,
        ("[data].target_path: missing",),
    ),
    (
        "unknown-activation",
        GOOD + 'activation = "swish"\n',
        (
            "[model].activation: 'swish' is not allowed",
            "tanh, sigmoid, softplus, gelu, erf, sin, identity, relu",
        ),
    ),
    (
        "unknown-kind",
        GOOD + 'kind = "cnn"\n',
        ("[model].kind: 'cnn' is not allowed", "mlp"),
    ),
    (
        "unknown-parameterization",
        GOOD + 'parameterization = "mup"\n',
        ("[model].parameterization: 'mup' is not allowed", "ntk, standard"),
    ),
    (
        "unknown-init",
        GOOD + 'init = "orthogonal"\n',
        ("[model].init: 'orthogonal' is not allowed", "gaussian, symmetric"),
    ),
    ("bias-not-bool", GOOD + "bias = 1\n", ("[model].bias: must be true or false, got 1",)),
    ("sigma-w-not-positive", GOOD + "sigma_w = 0\n", ("[model].sigma_w: must be > 0",)),
    ("sigma-b-negative", GOOD + "sigma_b = -1\n", ("[model].sigma_b: must be >= 0",)),
    ("sigma-w-not-a-number", GOOD + 'sigma_w = "1"\n', ("[model].sigma_w: must be a number",)),
    ("sigma-w-infinite", GOOD + "sigma_w = inf\n", ("[model].sigma_w: must be a finite number",)),
]
WIDTH_CASES = [
    ("widths-empty", "[]"),
    ("widths-zero", "[0]"),
    ("widths-negative", "[8, -3]"),
    ("widths-float", "[8.5]"),
    ("widths-bool", "[true]"),
    ("widths-not-a-list", "100"),
]
for _id, _widths in WIDTH_CASES:
    CASES.append(
        (
            _id,
            GOOD_DATA + f"[model]\nwidths = {_widths}\n",
            ("[model].widths: must be a non-empty list of positive integers",),
        )
    )
CASES += [
    (
        "odd-width-with-symmetric-init",
        GOOD_DATA + '[model]\nwidths = [8, 5]\ninit = "symmetric"\n',
        ("[model].widths: init = 'symmetric'", "every width must be even", "[8, 5]"),
    ),
    ("alpha-not-positive", GOOD + "[flow]\nalpha = 0\n", ("[flow].alpha: must be > 0, got 0.0",)),
    ("alpha-string", GOOD + '[flow]\nalpha = "big"\n', ("[flow].alpha: must be a number",)),
    (
        "unknown-method",
        GOOD + '[flow]\nmethod = "euler"\n',
        ("[flow].method: 'euler' is not allowed", "exp, RK45, DOP853, LSODA, Radau, BDF, gd"),
    ),
    (
        "rtol-out-of-range",
        GOOD + "[flow]\nrtol = 0.5\n",
        ("[flow].rtol: must lie between 1e-14 and 0.1",),
    ),
    (
        "n-times-too-small",
        GOOD + "[flow]\nn_times = 5\n",
        ("[flow].n_times: must be >= 10, got 5",),
    ),
    (
        "checkpoints-too-small",
        GOOD + "[flow]\ncheckpoints = 1\n",
        ("[flow].checkpoints: must be >= 2",),
    ),
    (
        "beta-unknown-mode",
        GOOD + '[check]\nbeta = "exact"\n',
        ("[check].beta: 'exact' is not allowed", "auto, certified, sampled"),
    ),
    (
        "beta-negative",
        GOOD + "[check]\nbeta = -2.0\n",
        ("[check].beta: must be a finite number >= 0", "auto, certified, sampled"),
    ),
    ("beta-bool", GOOD + "[check]\nbeta = true\n", ("[check].beta: must be a finite number >= 0",)),
    (
        "radius-unknown-mode",
        GOOD + '[check]\nradius = "big"\n',
        ("[check].radius: 'big' is not allowed", "auto"),
    ),
    (
        "ball-points-zero",
        GOOD + "[check]\nball_points = 0\n",
        ("[check].ball_points: must be >= 1",),
    ),
    (
        "tolerance-negative",
        GOOD + "[check]\ntolerance = -1.0\n",
        ("[check].tolerance: must be > 0",),
    ),
    ("not-toml", "[data\nsource = 1\n", ("not valid TOML",)),
]
CASE_IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("case", "text", "fragments"), CASES, ids=CASE_IDS)
def test_spec_error_is_one_line_on_stderr_with_exit_code_2(
    one_line_error, case, text, fragments, write_file, run_cli
) -> None:
    path = write_file("spec.toml", text)
    result = run_cli(["info", path])
    one_line_error(result, str(path), *fragments)


@pytest.mark.parametrize(("case", "text", "fragments"), CASES, ids=CASE_IDS)
def test_spec_error_raises_lazycheck_error_in_the_python_api(
    case, text, fragments, write_file
) -> None:
    path = write_file("spec.toml", text)
    with pytest.raises(LazycheckError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_missing_spec_file_is_an_error(one_line_error, tmp_path, run_cli) -> None:
    path = tmp_path / "absent.toml"
    one_line_error(run_cli(["info", path]), str(path), "spec file does not exist")
    with pytest.raises(LazycheckError, match="does not exist"):
        load_spec(path)


def test_directory_as_spec_is_an_error(one_line_error, tmp_path, run_cli) -> None:
    one_line_error(run_cli(["info", tmp_path]), str(tmp_path), "is a directory")


def test_binary_spec_file_is_an_error(one_line_error, tmp_path, run_cli) -> None:
    path = tmp_path / "spec.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    one_line_error(run_cli(["info", path]), str(path), "not a UTF-8 text file")


def test_negative_seed_override_on_the_command_line_is_an_error(
    one_line_error, write_file, run_cli
) -> None:
    path = write_file("spec.toml", GOOD)
    one_line_error(run_cli(["info", path, "--seed", "-1"]), "--seed", "non-negative")


def test_long_error_messages_stay_on_one_line(one_line_error, tmp_path, run_cli) -> None:
    """Wide messages (deep paths, long allowed-key lists) must not be wrapped on stderr."""
    deep = tmp_path / ("a-rather-long-directory-name-" * 4) / "experiment.toml"
    deep.parent.mkdir()
    deep.write_text(GOOD + "\n[flow]\nthis_key_is_unknown_and_long = 1\n")
    one_line_error(run_cli(["info", deep]), str(deep), "this_key_is_unknown_and_long")


# ----------------------------------------------------------------------------- valid specs


def test_defaults_fill_every_table(write_file) -> None:
    spec = load_spec(write_file("spec.toml", '[data]\nsource = "synthetic"\n[model]\n'))
    assert spec.seed == 0 and spec.name == ""
    assert spec.data == DataSpec(source="synthetic")
    assert spec.model == ModelSpec()
    assert spec.flow == FlowSpec()
    assert spec.check == CheckSpec()
    assert spec.label == "spec.toml"


def test_every_key_is_parsed_into_the_dataclasses(write_file) -> None:
    text = """
seed = 7
name = "everything"
[data]
source = "synthetic"
n = 12
dim = 5
inputs = "gaussian"
targets = "smooth"
teacher_width = 4
noise = 0.5
standardize = true
subsample = 6
[model]
kind = "mlp"
widths = [6, 4]
activation = "gelu"
parameterization = "standard"
bias = true
sigma_w = 1.5
sigma_b = 0
init = "symmetric"
center = true
[flow]
alpha = 30
method = "Radau"
rtol = 1e-8
atol = 1e-10
horizon = 2.5
decay = 4
lr = 0.01
n_times = 50
checkpoints = 3
[check]
beta = "1.25"
radius = 0.5
beta_samples = 5
beta_iterations = 6
ball_points = 7
tolerance = 1e-3
"""
    spec = load_spec(write_file("spec.toml", text))
    assert spec.seed == 7 and spec.label == "everything"
    assert spec.data == DataSpec(
        source="synthetic", n=12, dim=5, inputs="gaussian", targets="smooth",
        teacher_width=4, noise=0.5, standardize=True, subsample=6,
    )  # fmt: skip
    assert spec.model == ModelSpec(
        kind="mlp", widths=(6, 4), activation="gelu", parameterization="standard", bias=True,
        sigma_w=1.5, sigma_b=0.0, init="symmetric", center=True,
    )  # fmt: skip
    assert spec.flow == FlowSpec(
        alpha=30.0, method="Radau", rtol=1e-8, atol=1e-10, horizon=2.5, decay=4.0, lr=0.01,
        n_times=50, checkpoints=3,
    )  # fmt: skip
    assert spec.check == CheckSpec(
        beta=1.25, radius=0.5, beta_samples=5, beta_iterations=6, ball_points=7, tolerance=1e-3
    )
    assert isinstance(spec.flow.alpha, float)


@pytest.mark.parametrize("source", ["csv", "npy", "npz"])
def test_data_paths_resolve_relative_to_the_spec_file(source, tmp_path, monkeypatch) -> None:
    (tmp_path / "sub").mkdir()
    data = tmp_path / "sub" / "data.bin"
    data.write_text("x")
    extra = {
        "csv": 'features = ["a"]\ntarget = "b"\n',
        "npy": 'target_path = "data.bin"\n',
        "npz": "",
    }[source]
    spec_file = tmp_path / "sub" / "spec.toml"
    spec_file.write_text(f'[data]\nsource = "{source}"\npath = "data.bin"\n{extra}[model]\n')
    monkeypatch.chdir(tmp_path)  # cwd is not the spec's directory
    spec = load_spec("sub/spec.toml")
    assert spec.data.path == data.resolve()
    if source == "npy":
        assert spec.data.target_path == data.resolve()


def test_absolute_data_paths_are_kept(tmp_path) -> None:
    data = tmp_path / "d.npz"
    data.write_text("x")
    spec = parse_spec(
        {"data": {"source": "npz", "path": str(data)}, "model": {}}, path=Path("/elsewhere/s.toml")
    )
    assert spec.data.path == data


def test_parse_spec_without_a_file_names_an_in_memory_spec() -> None:
    with pytest.raises(LazycheckError, match=r"^<spec>: missing table \[data\]"):
        parse_spec({"model": {}})
    spec = parse_spec({"data": {"source": "synthetic"}, "model": {}})
    assert spec.path is None and spec.label == "<in-memory spec>"


def test_beta_accepts_a_mode_or_a_number() -> None:
    for raw, expected in (("auto", "auto"), ("certified", "certified"), ("sampled", "sampled"),
                          (2, 2.0), (0.5, 0.5), ("3e-2", 0.03), (0, 0.0)):  # fmt: skip
        spec = parse_spec({"data": {"source": "synthetic"}, "model": {}, "check": {"beta": raw}})
        assert spec.check.beta == expected


# ----------------------------------------------------------------------------- overrides


def _spec() -> Spec:
    return parse_spec({"data": {"source": "synthetic"}, "model": {}, "flow": {"alpha": 2.0}})


def test_overrides_replace_only_the_named_values() -> None:
    base = _spec()
    spec = base.with_overrides(seed=5, alpha=10.0, method="gd", lr=0.1, beta="sampled", rtol=None)
    assert spec.seed == 5
    assert spec.flow.alpha == 10.0 and spec.flow.method == "gd" and spec.flow.lr == 0.1
    assert spec.flow.rtol == base.flow.rtol
    assert spec.check.beta == "sampled"
    assert spec.data == base.data and spec.model == base.model
    assert base.flow.alpha == 2.0  # the original is unchanged (frozen)


def test_none_overrides_change_nothing() -> None:
    base = _spec()
    assert base.with_overrides(seed=None, alpha=None, beta=None) == base


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"seed": -1}, "--seed: must be a non-negative integer"),
        ({"alpha": -1.0}, "--alpha: must be > 0"),
        ({"method": "euler"}, "--method: 'euler' is not allowed"),
        ({"rtol": 1.0}, "--rtol: must lie between"),
        ({"beta": "exact"}, "--beta: 'exact' is not allowed"),
        ({"widths": [3]}, "unknown override(s): widths"),
    ],
)
def test_bad_overrides_raise_one_line_errors(overrides, fragment) -> None:
    with pytest.raises(LazycheckError) as info:
        _spec().with_overrides(**overrides)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_error_messages_are_collapsed_to_one_line() -> None:
    assert str(LazycheckError("a\n  b\tc ")) == "a b c"
    assert LazycheckError("x").exit_code == 2
    assert isinstance(LazycheckError("x"), ValueError)


# ----------------------------------------------------------------------------- --set overrides


def test_set_any_key_is_validated_like_the_file(run_cli, one_line_error) -> None:
    spec = "samples/two_layer_tanh.toml"
    ok = run_cli(["info", spec, "--set", "model.widths=[64]", "--set", "model.activation=erf"])
    assert ok.exit_code == 0, ok.output
    assert "erf MLP" in ok.stdout and "hidden 64" in ok.stdout
    one_line_error(run_cli(["info", spec, "--set", "model.widht=3"]), "--set model.widht")
    one_line_error(run_cli(["info", spec, "--set", "model.widths=0"]), "--set model.widths")
    one_line_error(run_cli(["info", spec, "--set", "widths"]), "expected KEY=VALUE")
    one_line_error(run_cli(["info", spec, "--set", "data.n=[1,"]), "not a TOML value")


def test_settings_and_shorthands_in_python() -> None:
    from lazycheck.problem import load_problem
    from lazycheck.spec import parse_setting

    assert parse_setting("model.widths=[8, 8]") == ("model.widths", [8, 8])
    assert parse_setting("model.activation=erf") == ("model.activation", "erf")
    assert parse_setting("flow.alpha=1e3") == ("flow.alpha", 1000.0)
    prob = load_problem("samples/two_layer_tanh.toml", settings={"data.n": 7}, alpha=5.0)
    assert prob.n == 7 and prob.alpha == 5.0
    with pytest.raises(LazycheckError, match="--alpha"):
        load_problem("samples/two_layer_tanh.toml", alpha=-1.0)


def test_data_seed_fixes_the_data_while_the_init_varies() -> None:
    from lazycheck.problem import load_problem

    a = load_problem("samples/two_layer_tanh.toml", seed=1, data_seed=7)
    b = load_problem("samples/two_layer_tanh.toml", seed=2, data_seed=7)
    c = load_problem("samples/two_layer_tanh.toml", seed=1)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.w0, b.w0)
    assert not np.array_equal(a.X, c.X)  # default: the data follow --seed, as before
    d = load_problem("samples/two_layer_tanh.toml", seed=7)
    np.testing.assert_array_equal(a.X, d.X)
