"""Data: readers, synthetic generators, subsample/standardize, every data error through the CLI
and the Python API, seeds and reproducibility."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lazycheck.data import load_data, synthetic_data
from lazycheck.errors import LazycheckError
from lazycheck.problem import load_problem, rng_for
from lazycheck.spec import DataSpec, load_spec

MODEL = "[model]\nwidths = [8]\n"
IRIS = Path(__file__).resolve().parent.parent / "samples" / "iris.csv"


def _csv_spec(write_file, csv_text: str, extra: str = "", features=("a", "b"), target="y"):
    data = write_file("data.csv", csv_text)
    feats = ", ".join(f'"{f}"' for f in features)
    spec = write_file(
        "spec.toml",
        f'[data]\nsource = "csv"\npath = "data.csv"\nfeatures = [{feats}]\n'
        f'target = "{target}"\n{extra}' + MODEL,
    )
    return spec, data


@pytest.fixture
def both_fail(run_cli, one_line_error):
    """``both_fail(spec, *fragments)``: the CLI prints one line and exits 2; the Python API
    raises LazycheckError with a one-line message holding the same fragments."""

    def check(spec: Path, *fragments: str) -> None:
        one_line_error(run_cli(["info", spec]), *fragments)
        with pytest.raises(LazycheckError) as info:
            load_problem(spec)
        message = str(info.value)
        assert "\n" not in message
        for fragment in fragments:
            assert fragment in message

    return check


# ----------------------------------------------------------------------------- CSV errors

GOOD_CSV = "a,b,y\n1,2,3\n4,5,6\n7,8,10\n"
CSV_CASES = [
    ("empty-file", "", ("the file is empty",)),
    ("blank-lines-only", "\n \n", ("the file is empty",)),
    ("header-only", "a,b,y\n", ("has a header but no data rows",)),
    ("ragged-row", "a,b,y\n1,2,3\n4,5\n", (":3: ragged row with 2 fields; the header has 3",)),
    (
        "non-numeric-target",
        "a,b,y\n1,2,3\n4,5,six\n",
        (":3: column 'y' holds 'six', which is not a number",),
    ),
    (
        "non-numeric-feature",
        "a,b,y\n1,2,3\n4,x5,6\n",
        (":3: column 'b' holds 'x5', which is not a number",),
    ),
    ("nan-value", "a,b,y\n1,nan,3\n4,5,6\n", (":2: column 'b' holds 'nan'", "finite numbers")),
    ("inf-value", "a,b,y\n1,2,3\n4,5,-inf\n", (":3: column 'y' holds '-inf'", "finite numbers")),
    ("empty-field", "a,b,y\n1,,3\n", (":2: column 'b' holds ''", "not a number")),
    ("missing-column", "a,c,y\n1,2,3\n", ("no column 'b'", "the header has a, c, y")),
]


@pytest.mark.parametrize(("case", "text", "fragments"), CSV_CASES, ids=[c[0] for c in CSV_CASES])
def test_csv_error_names_the_file_line_and_column(case, text, fragments, write_file, both_fail):
    spec, data = _csv_spec(write_file, text)
    both_fail(spec, str(data), *fragments)


def test_missing_target_column_is_an_error(write_file, both_fail) -> None:
    spec, data = _csv_spec(write_file, GOOD_CSV, target="z")
    both_fail(spec, str(data), "no column 'z'", "the header has a, b, y")


def test_non_utf8_csv_is_an_error(write_file, both_fail) -> None:
    spec, data = _csv_spec(write_file, "")
    data.write_bytes(b"a,b,y\n\xff\xfe,1,2\n")
    both_fail(spec, str(data), "not a UTF-8 text file")


def test_csv_reads_the_listed_columns_in_the_listed_order(write_file) -> None:
    spec, _ = _csv_spec(write_file, " b , y ,a\n1,2,3\n4,5,6\n\n", features=("a", "b"))
    ds = load_data(load_spec(spec).data, rng_for(0, "data"))
    np.testing.assert_array_equal(ds.X, [[3.0, 1.0], [6.0, 4.0]])
    np.testing.assert_array_equal(ds.y, [2.0, 5.0])
    assert ds.X.dtype == np.float64 and ds.X.flags.c_contiguous
    assert ds.n == 2 and ds.dim == 2 and ds.source == "csv: data.csv"


# ----------------------------------------------------------------------------- npy / npz


def _npz_spec(write_file, tmp_path: Path, arrays: dict, extra: str = "") -> tuple[Path, Path]:
    data = tmp_path / "data.npz"
    np.savez(data, **arrays)
    spec = write_file("spec.toml", f'[data]\nsource = "npz"\npath = "data.npz"\n{extra}' + MODEL)
    return spec, data


def _npy_spec(write_file, tmp_path: Path, X, y) -> tuple[Path, Path]:
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    spec = write_file(
        "spec.toml",
        '[data]\nsource = "npy"\npath = "X.npy"\ntarget_path = "y.npy"\n' + MODEL,
    )
    return spec, tmp_path / "X.npy"


def test_npz_missing_x_key_is_an_error(write_file, tmp_path, both_fail) -> None:
    spec, data = _npz_spec(write_file, tmp_path, {"inputs": np.ones((3, 2)), "y": np.ones(3)})
    both_fail(spec, str(data), "[data].x_key 'X' is not in the archive", "holds inputs, y")


def test_npz_missing_y_key_is_an_error(write_file, tmp_path, both_fail) -> None:
    spec, data = _npz_spec(
        write_file, tmp_path, {"X": np.ones((3, 2)), "y": np.ones(3)}, 'y_key = "labels"\n'
    )
    both_fail(spec, str(data), "[data].y_key 'labels' is not in the archive", "X, y")


def test_npz_custom_keys_are_read(write_file, tmp_path) -> None:
    X = np.arange(6.0).reshape(3, 2)
    spec, _ = _npz_spec(
        write_file, tmp_path, {"feat": X, "lab": np.array([1, 2, 3])},
        'x_key = "feat"\ny_key = "lab"\n',
    )  # fmt: skip
    ds = load_data(load_spec(spec).data, rng_for(0, "data"))
    np.testing.assert_array_equal(ds.X, X)
    assert ds.y.dtype == np.float64 and list(ds.y) == [1.0, 2.0, 3.0]


def test_npz_that_is_not_an_archive_is_an_error(write_file, tmp_path, both_fail) -> None:
    (tmp_path / "data.npz").write_bytes(b"not a zip file")
    spec = write_file("spec.toml", '[data]\nsource = "npz"\npath = "data.npz"\n' + MODEL)
    both_fail(spec, str(tmp_path / "data.npz"), "cannot read as .npz")


def test_npy_row_count_mismatch_is_an_error(write_file, tmp_path, both_fail) -> None:
    spec, data = _npy_spec(write_file, tmp_path, np.ones((5, 2)), np.ones(4))
    both_fail(spec, str(data), "5 feature rows but 4 targets; they must match")


def test_npy_targets_with_two_columns_are_an_error(write_file, tmp_path, both_fail) -> None:
    spec, data = _npy_spec(write_file, tmp_path, np.ones((5, 2)), np.ones((5, 2)))
    both_fail(spec, str(data), "targets must be 1-D (n,), got shape (5, 2)")


def test_npy_three_dimensional_features_are_an_error(write_file, tmp_path, both_fail) -> None:
    spec, data = _npy_spec(write_file, tmp_path, np.ones((5, 2, 2)), np.ones(5))
    both_fail(spec, str(data), "features must be a 2-D array (n, d), got shape (5, 2, 2)")


def test_npy_non_numeric_features_are_an_error(write_file, tmp_path, both_fail) -> None:
    spec, data = _npy_spec(write_file, tmp_path, np.array([["a", "b"]]), np.ones(1))
    both_fail(spec, str(data), "features and targets must be numeric arrays")


def test_npy_non_finite_targets_are_an_error(write_file, tmp_path, both_fail) -> None:
    spec, data = _npy_spec(write_file, tmp_path, np.ones((3, 2)), np.array([1.0, np.nan, 2.0]))
    both_fail(spec, str(data), "the targets hold NaN or infinite values")


def test_npy_empty_arrays_are_an_error(write_file, tmp_path, both_fail) -> None:
    spec, data = _npy_spec(write_file, tmp_path, np.ones((0, 2)), np.ones(0))
    both_fail(spec, str(data), "the data set is empty")


def test_unreadable_npy_is_an_error(write_file, tmp_path, both_fail) -> None:
    spec, data = _npy_spec(write_file, tmp_path, np.ones((3, 2)), np.ones(3))
    data.write_bytes(b"garbage")
    both_fail(spec, str(data), "cannot read as .npy features")


def test_npy_shapes_are_normalized(write_file, tmp_path) -> None:
    spec, _ = _npy_spec(write_file, tmp_path, np.arange(4), np.arange(4).reshape(4, 1))
    ds = load_data(load_spec(spec).data, rng_for(0, "data"))
    assert ds.X.shape == (4, 1) and ds.y.shape == (4,)
    assert ds.X.dtype == ds.y.dtype == np.float64


# ------------------------------------------------------------------ subsample, standardize


def test_subsample_larger_than_the_data_is_an_error(write_file, both_fail) -> None:
    spec, _ = _csv_spec(write_file, GOOD_CSV, "subsample = 4\n")
    both_fail(spec, str(spec), "[data].subsample: 4 is more than the 3 rows available")


def test_subsample_larger_than_synthetic_n_is_an_error(write_file, both_fail) -> None:
    spec = write_file("spec.toml", '[data]\nsource = "synthetic"\nn = 5\nsubsample = 6\n' + MODEL)
    both_fail(spec, str(spec), "[data].subsample: 6 is more than the 5 rows available")


def test_constant_column_with_standardize_is_an_error(write_file, both_fail) -> None:
    spec, _ = _csv_spec(write_file, "a,b,y\n1,2,3\n4,2,6\n", "standardize = true\n")
    both_fail(spec, str(spec), "[data].standardize: feature column 'b' is constant")


def test_constant_column_with_rounding_noise_in_its_deviation_is_an_error(write_file, both_fail):
    # np.std of a column of 0.1's is 1.4e-17, not 0: the check must not rely on std == 0
    rows = "".join(f"{i},0.1,{i}\n" for i in range(7))
    spec, _ = _csv_spec(write_file, "a,b,y\n" + rows, "standardize = true\n")
    both_fail(spec, str(spec), "[data].standardize: feature column 'b' is constant")


def test_constant_column_without_standardize_is_accepted(write_file) -> None:
    spec, _ = _csv_spec(write_file, "a,b,y\n1,2,3\n4,2,6\n")
    assert load_problem(spec).n == 2


def test_subsample_draws_distinct_rows_in_file_order(write_file) -> None:
    rows = "".join(f"{i},{-i},{2 * i}\n" for i in range(50))
    spec, _ = _csv_spec(write_file, "a,b,y\n" + rows, "subsample = 20\n")
    ds = load_data(load_spec(spec).data, rng_for(3, "data"))
    idx = ds.X[:, 0].astype(int)
    assert len(set(idx)) == 20 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(ds.X[:, 1], -idx)
    np.testing.assert_array_equal(ds.y, 2 * idx)  # targets follow their rows
    assert "20 rows subsampled" in ds.source


def test_standardize_gives_zero_mean_and_unit_deviation() -> None:
    spec = DataSpec(source="synthetic", n=30, dim=4, inputs="gaussian", standardize=True)
    ds = load_data(spec, np.random.default_rng(0))
    np.testing.assert_allclose(ds.X.mean(axis=0), 0.0, atol=1e-14)
    np.testing.assert_allclose(ds.X.std(axis=0), 1.0, rtol=1e-13)
    assert ds.source.endswith(", standardized")


# ----------------------------------------------------------------------------- synthetic


def test_sphere_inputs_have_unit_norm() -> None:
    X, _ = synthetic_data(50, 6, "sphere", "teacher", np.random.default_rng(0))
    assert X.shape == (50, 6)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-14)


def test_gaussian_inputs_have_unit_mean_square_norm() -> None:
    X, _ = synthetic_data(4000, 10, "gaussian", "teacher", np.random.default_rng(0))
    sq = np.sum(X**2, axis=1)  # chi^2_10 / 10: mean 1, sd sqrt(2/10)
    assert abs(sq.mean() - 1.0) < 5 * math.sqrt(0.2 / 4000)


def test_teacher_targets_follow_the_documented_formula() -> None:
    X, y = synthetic_data(7, 3, "sphere", "teacher", np.random.default_rng(4), teacher_width=5)
    rng = np.random.default_rng(4)
    rng.standard_normal((7, 3))  # the same draws in the same order
    U, a = rng.standard_normal((5, 3)), rng.standard_normal(5)
    np.testing.assert_allclose(y, np.tanh(X @ U.T) @ a / math.sqrt(5), rtol=1e-13)


def test_smooth_targets_are_bounded_and_random_labels_are_signs() -> None:
    _, y = synthetic_data(200, 3, "sphere", "smooth", np.random.default_rng(0))
    assert np.all(np.abs(y) <= 1.5) and np.std(y) > 0.1
    _, y = synthetic_data(200, 3, "sphere", "random_labels", np.random.default_rng(0))
    assert set(np.unique(y)) == {-1.0, 1.0}


def test_noise_is_added_with_the_given_deviation() -> None:
    args = (2000, 3, "sphere", "teacher")
    _, clean = synthetic_data(*args, np.random.default_rng(1))
    _, noisy = synthetic_data(*args, np.random.default_rng(1), noise=0.5)
    resid = noisy - clean
    assert abs(resid.std() - 0.5) < 5 * 0.5 / math.sqrt(2 * 2000)


@pytest.mark.parametrize(("inputs", "targets"), [("cube", "teacher"), ("sphere", "xor")])
def test_synthetic_generator_rejects_unknown_kinds(inputs, targets) -> None:
    with pytest.raises(LazycheckError, match="is not allowed"):
        synthetic_data(3, 2, inputs, targets, np.random.default_rng(0))


# ----------------------------------------------------------------------------- seeds


def _synthetic_spec(write_file, name: str = "spec.toml") -> Path:
    return write_file(
        name, 'seed = 1\n[data]\nsource = "synthetic"\nn = 6\ndim = 3\nnoise = 0.1\n' + MODEL
    )


def test_the_same_seed_gives_identical_arrays(write_file) -> None:
    spec = _synthetic_spec(write_file)
    a, b = load_problem(spec), load_problem(spec)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.w0, b.w0)


def test_seed_override_changes_the_data(write_file) -> None:
    spec = _synthetic_spec(write_file)
    a, b = load_problem(spec), load_problem(spec, seed=2)
    assert b.seed == 2
    assert not np.array_equal(a.X, b.X) and not np.array_equal(a.y, b.y)
    np.testing.assert_array_equal(load_problem(spec, seed=2).X, b.X)


def test_cli_seed_override_changes_the_data_and_is_reproducible(write_file, run_cli) -> None:
    spec = _synthetic_spec(write_file)
    outs = [run_cli(["info", spec, *args]) for args in ([], ["--seed", "1"], ["--seed", "9"])]
    assert all(r.exit_code == 0 for r in outs), [r.output for r in outs]
    norm = [next(line for line in r.stdout.splitlines() if "||y||" in line) for r in outs]
    assert norm[0] == norm[1]  # the spec's own seed is 1
    assert norm[2] != norm[0]
    assert "seed = 9" in outs[2].stdout


def test_subsample_is_reproducible_and_follows_the_seed(write_file) -> None:
    rows = "".join(f"{i},{i % 7},{i}\n" for i in range(60))
    spec, _ = _csv_spec(write_file, "a,b,y\n" + rows, "subsample = 10\n")
    a, b, c = load_problem(spec), load_problem(spec), load_problem(spec, seed=5)
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


def test_relative_data_paths_work_from_another_directory(tmp_path, monkeypatch, run_cli) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "data").mkdir()
    (project / "data" / "d.csv").write_text(GOOD_CSV)
    spec = project / "spec.toml"
    spec.write_text(
        '[data]\nsource = "csv"\npath = "data/d.csv"\nfeatures = ["a", "b"]\ntarget = "y"\n' + MODEL
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for arg in (spec, Path("..") / "project" / "spec.toml"):
        result = run_cli(["info", arg])
        assert result.exit_code == 0, result.output
        assert "n = 3, d = 2" in result.stdout
        np.testing.assert_array_equal(load_problem(arg).y, [3.0, 6.0, 10.0])


def test_bundled_iris_data_reads_as_150_rows() -> None:
    spec = DataSpec(
        source="csv", path=IRIS, features=("sepal_length", "sepal_width", "petal_length"),
        target="petal_width",
    )  # fmt: skip
    ds = load_data(spec, rng_for(0, "data"))
    assert ds.X.shape == (150, 3)
    assert ds.y.min() >= 0.1 and ds.y.max() <= 2.5


def test_zero_feature_columns_are_an_error(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((4, 0)))
    np.save(tmp_path / "y.npy", np.zeros(4))
    spec = DataSpec(source="npy", path=tmp_path / "X.npy", target_path=tmp_path / "y.npy")
    with pytest.raises(LazycheckError, match="0 columns"):
        load_data(spec, rng_for(0, "data"))


def test_csv_field_over_the_csv_limit_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,2\n3," + "4" * 200_000 + "\n")
    spec = DataSpec(source="csv", path=path, features=("a",), target="y")
    with pytest.raises(LazycheckError, match=r"d\.csv:3: not readable as CSV.*131072"):
        load_data(spec, rng_for(0, "data"))


def test_a_fifo_as_data_is_refused_without_opening_it(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "d.csv"
    os.mkfifo(fifo)  # opening it would block: the check must come first
    spec = DataSpec(source="csv", path=fifo, features=("a",), target="y")
    with pytest.raises(LazycheckError, match=r"not a regular file \(a FIFO\)"):
        load_data(spec, rng_for(0, "data"))


def test_synthetic_sizes_are_checked_before_drawing() -> None:
    from lazycheck import resources

    resources.set_memory_limit("1M")
    try:
        with pytest.raises(LazycheckError, match=r"teacher.*reduce \[data\]\.teacher_width"):
            load_data(DataSpec(n=10, dim=3, teacher_width=10**6), rng_for(0, "data"))
        with pytest.raises(LazycheckError, match=r"n x dim = 100000 x 3"):
            load_data(DataSpec(n=100_000, dim=3), rng_for(0, "data"))
    finally:
        resources.set_memory_limit(None)
