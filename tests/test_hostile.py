"""A hostile-input battery: specs, data files, options, outputs and signals, each through the CLI.

Every case asserts the exit code, that stderr is a single ``lazycheck: error:`` line naming the
key, file or option (no traceback, no warning), and the state of every file afterwards: inputs
unchanged, no temporary file left, no partial output. Cases that could hang (FIFOs) or
exhaust memory run in a subprocess with a timeout and an address-space limit (RLIMIT_AS).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

REPO = Path(__file__).resolve().parent.parent
CHILD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
CHILD_ENV.pop("LAZYCHECK_MEMORY_LIMIT", None)


def spec_text(top: str = "", **tables: dict[str, str]) -> str:
    """A small valid spec (tanh, n = 4, width 8, centered) with keys replaced or added; each
    value is TOML text, ``None`` removes the key."""
    base = {
        "data": {"source": '"synthetic"', "n": "4", "dim": "2"},
        "model": {"widths": "[8]", "activation": '"tanh"', "center": "true"},
        "flow": {"alpha": "10.0"},
        "check": {},
    }
    lines = ["seed = 0", top]
    for name, table in base.items():
        table = {**table, **tables.get(name, {})}
        lines.append(f"[{name}]")
        lines += [f"{k} = {v}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- harness


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: its kind and, for a regular file, a hash of its bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = os.lstat(p)
            key = str(p.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                out[key] = "link:" + os.readlink(p)
            else:
                out[key] = f"mode:{stat.S_IFMT(st.st_mode)}"
    return out


def invoke(args: list[object], env: dict[str, str] | None = None) -> Result:
    from lazycheck.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def assert_one_error(code: int, stderr: str, fragments: tuple[str, ...], want: int = 2) -> None:
    assert code == want, (code, stderr)
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"stderr is {len(lines)} lines: {stderr!r}"
    assert lines[0].startswith("lazycheck: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


def run_child(
    args: list[object],
    cwd: Path,
    *,
    timeout: float = 60,
    address_space: int | None = None,
    code: str | None = None,
) -> subprocess.Popen:
    """Start ``python -m lazycheck ARGS`` (or ``python -c CODE ARGS``) in ``cwd``; with
    ``address_space``, the child sets RLIMIT_AS itself before it imports anything else (a
    ``preexec_fn`` would make subprocess run Python between fork and exec, in a parent where
    JAX's threads may be running: JAX warns of a deadlock there)."""
    head = [sys.executable, "-c", code] if code else [sys.executable, "-m", "lazycheck"]
    if address_space is not None:
        body = code or (
            "import runpy; runpy.run_module('lazycheck', run_name='__main__', alter_sys=True)"
        )
        limit = f"({address_space}, {address_space})"
        head = [
            sys.executable,
            "-c",
            f"import resource; resource.setrlimit(resource.RLIMIT_AS, {limit})\n{body}",
        ]
    return subprocess.Popen(
        [*head, *(str(a) for a in args)],
        cwd=cwd,
        env={**CHILD_ENV, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"lazycheck did not finish within {timeout} s (a hang)")
    return proc.returncode, out, err


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """A directory with a valid spec ``s.toml``; the test runs from it."""
    (tmp_path / "s.toml").write_text(spec_text(), encoding="utf-8")
    return tmp_path


def check_error_case(
    box: Path, args: list[object], fragments: tuple[str, ...], want: int = 2, **env: str
) -> None:
    """Run in-process; one error line, and every file under ``box`` exactly as before."""
    before = snapshot(box)
    result = invoke(args, env=env or None)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert_one_error(result.exit_code, result.stderr, fragments, want)
    assert result.stdout == ""
    assert snapshot(box) == before


# ----------------------------------------------------------------------------- specs

SPEC_CASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # id: (spec text, command, fragments of the error line)
    "invalid-toml": (
        "[data\nsource = 1\n",
        "info",
        (
            "hostile.toml",
            "not valid TOML",
        ),
    ),
    "not-utf8": (
        "seed = 0\n# \xff\n",
        "info",
        ("hostile.toml", "UTF-8"),
    ),  # written as latin-1 below
    "deep-arrays": (
        "x = " + "[" * 5000 + "]" * 5000 + "\n",
        "info",
        (
            "hostile.toml",
            "nested too deeply",
        ),
    ),
    "int-5000-digits": (
        spec_text(data={"n": "9" * 5000}),
        "info",
        (
            "hostile.toml",
            "4300 digits",
        ),
    ),
    "unknown-top-key": (
        spec_text(top="colour = 1"),
        "info",
        (
            "hostile.toml",
            "unknown key 'colour'",
        ),
    ),
    "missing-data": (
        "seed = 0\n[model]\nwidths = [4]\n",
        "info",
        (
            "hostile.toml",
            "missing table [data]",
        ),
    ),
    "data-not-table": (
        "data = 3\n[model]\nwidths = [4]\n",
        "info",
        (
            "hostile.toml",
            "[data] must be a table",
        ),
    ),
    "alpha-400-digits": (
        spec_text(flow={"alpha": "1" * 400}),
        "bound",
        ("[flow].alpha", "an integer of 400 digits", "too large"),
    ),
    "alpha-1e308": (spec_text(flow={"alpha": "1e308"}), "bound", ("[flow].alpha", "1e+100")),
    "alpha-1e-300": (spec_text(flow={"alpha": "1e-300"}), "bound", ("[flow].alpha", "1e-100")),
    "alpha-zero": (spec_text(flow={"alpha": "0.0"}), "bound", ("[flow].alpha", "> 0")),
    "alpha-nan": (spec_text(flow={"alpha": "nan"}), "bound", ("[flow].alpha", "finite")),
    "alpha-inf": (spec_text(flow={"alpha": "inf"}), "bound", ("[flow].alpha", "finite")),
    "alpha-string": (spec_text(flow={"alpha": '"big"'}), "bound", ("[flow].alpha", "number")),
    "decay-1e4": (spec_text(flow={"decay": "1e4"}), "simulate", ("[flow].decay", "700")),
    "n-times-1e9": (spec_text(flow={"n_times": "1000000000"}), "simulate", ("[flow].n_times",)),
    "n-times-5": (spec_text(flow={"n_times": "5"}), "simulate", ("[flow].n_times", ">= 10")),
    "checkpoints-huge": (
        spec_text(flow={"checkpoints": "10000000"}),
        "simulate",
        ("[flow].checkpoints", "<= 100000"),
    ),
    "beta-samples-1e9": (
        spec_text(check={"beta_samples": "1000000000"}),
        "bound",
        ("[check].beta_samples", "<= 100000"),
    ),
    "width-zero": (spec_text(model={"widths": "[0]"}), "info", ("[model].widths",)),
    "width-string": (spec_text(model={"widths": '"wide"'}), "info", ("[model].widths",)),
    "width-1e20": (
        spec_text(model={"widths": "[100000000000000000000]"}),
        "info",
        ("[model]", "weights", "reduce [model].widths", "--memory-limit"),
    ),
    "width-1e9": (
        spec_text(model={"widths": "[1000000000]"}),
        "info",
        ("[model]", "GiB", "reduce [model].widths"),
    ),
    "teacher-width-huge": (
        spec_text(data={"teacher_width": "10000000000"}),
        "info",
        ("[data]", "teacher", "reduce [data].teacher_width"),
    ),
    "dim-huge": (
        spec_text(data={"dim": "10000000000"}),
        "info",
        ("[data]", "synthetic inputs", "reduce [data].n or [data].dim"),
    ),
    "n-huge": (
        spec_text(data={"n": "10000000000000"}),
        "info",
        ("[data]", "synthetic inputs", "TiB"),
    ),
    "sigma-w-1e200": (
        spec_text(model={"sigma_w": "1e200"}),
        "bound",
        ("hostile.toml: [model]", "overflows float64", "sigma_w"),
    ),
    "sigma-w-1e160-uncentered": (
        spec_text(model={"sigma_w": "1e160", "center": "false"}),
        "verify",
        ("overflows float64",),
    ),
    "seed-negative": (spec_text().replace("seed = 0", "seed = -1"), "info", ("seed",)),
    "seed-float": (spec_text().replace("seed = 0", "seed = 1.5"), "info", ("seed",)),
    "rtol-large": (spec_text(flow={"rtol": "0.5"}), "simulate", ("[flow].rtol", "0.1")),
    "activation-unknown": (
        spec_text(model={"activation": '"swish"'}),
        "info",
        ("[model].activation", "tanh"),
    ),
    "exp-on-relu": (
        spec_text(model={"activation": '"relu"'}, flow={"method": '"exp"'}),
        "simulate",
        ("[flow].method", "not smooth", "--method gd"),
    ),
    "rk45-on-relu": (
        spec_text(model={"activation": '"relu"'}, flow={"method": '"RK45"'}),
        "simulate",
        ("RK45", "not smooth"),
    ),
    "horizon-1e30": (
        spec_text(flow={"horizon": "1e30"}),
        "simulate",
        ("[flow].horizon", "give a horizon <="),
    ),
    "gd-without-lr": (spec_text(flow={"method": '"gd"'}), "simulate", ("--lr",)),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_hostile_spec(case: str, box: Path) -> None:
    text, command, fragments = SPEC_CASES[case]
    path = box / "hostile.toml"
    path.write_bytes(text.encode("latin-1" if case == "not-utf8" else "utf-8"))
    args = [command, path] if command == "info" else [command, path, "--no-progress"]
    t0 = time.perf_counter()
    check_error_case(box, args, fragments)
    assert time.perf_counter() - t0 < 20, "a hopeless run must fail early"


def test_spec_over_one_mebibyte(box: Path) -> None:
    path = box / "big.toml"
    path.write_text(spec_text() + "#" * 2**20 + "\n", encoding="utf-8")
    check_error_case(box, ["info", path], (str(path), "over the limit"))


@pytest.mark.parametrize("name", ["missing.toml", "."])
def test_spec_missing_or_directory(name: str, box: Path) -> None:
    check_error_case(box, ["info", box / name], ("does not exist" if name != "." else "directory",))


def test_control_characters_in_a_path_are_escaped_in_the_one_line(box: Path) -> None:
    odd = box / "bad\x1b[31mname\nx.toml"
    check_error_case(box, ["info", odd], ("bad\\x1b[31mname", "does not exist"))


def test_memory_limit_environment_garbage_is_named(box: Path) -> None:
    check_error_case(
        box, ["info", box / "s.toml"], ("LAZYCHECK_MEMORY_LIMIT", "'plenty'"),
        LAZYCHECK_MEMORY_LIMIT="plenty",
    )  # fmt: skip


def test_dev_zero_as_spec_is_refused_unread(box: Path) -> None:
    check_error_case(box, ["info", "/dev/zero"], ("/dev/zero", "character device"))


# ----------------------------------------------------------------------------- options

# a stiff problem: cond(K0) ~ 1e4, so RK45 needs tens of millions of evaluations
RK45_SETS = ["--set", "data.n=10", "--set", "data.dim=3", "--set", "model.widths=[20]"]
RK45_SETS += ["--set", "flow.alpha=100.0"]
OPTION_CASES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "seed-float": (["bound", "--seed", "1.5"], ("--seed", "'1.5'", "integer", "--help")),
    "alpha-word": (["bound", "--alpha", "foo"], ("--alpha", "'foo'", "number")),
    "format-xml": (["verify", "--format", "xml"], ("--format", "'xml'", "junit")),
    "format-eq-xml": (["bound", "--format=xml"], ("--format", "'xml'")),
    "unknown-option": (["bound", "--alpah", "3"], ("--alpah", "no such option", "--alpha")),
    "threads-zero": (["info", "--threads", "0"], ("--threads", "'0'")),
    "alpha-1e308": (["bound", "--alpha", "1e308"], ("--alpha", "1e+100", "float64")),
    "alpha-1e-300": (["bound", "--alpha", "1e-300"], ("--alpha", "1e-100")),
    "alpha-negative": (["bound", "--alpha=-1"], ("--alpha", "> 0")),
    "memory-limit-word": (["info", "--memory-limit", "lots"], ("--memory-limit", "'lots'")),
    "memory-limit-1m": (
        ["info", "--set", "data.n=100000", "--memory-limit", "1M"],
        ("needs", "1 MiB", "--memory-limit", "reduce [data].n"),
    ),
    "horizon-1e30": (["simulate", "--horizon", "1e30"], ("--horizon", "give a horizon <=")),
    "decay-1e6": (["simulate", "--decay", "1e6"], ("--decay", "700")),
    "method-exp-relu": (
        ["simulate", "--method", "exp", "--set", "model.activation=relu"],
        ("--method", "not smooth"),
    ),
    "rk45-hopeless": (
        ["simulate", "--method", "RK45", "--decay", "700", *RK45_SETS],
        ("RK45", "explicit method needs at least", "--method exp"),
    ),
    "method-unknown": (["simulate", "--method", "euler"], ("--method", "'euler'", "exp")),
    "lr-too-large": (["simulate", "--method", "gd", "--lr", "1e9"], ("--lr", "stability limit")),
    "beta-word": (["bound", "--beta", "huge"], ("--beta", "'huge'")),
    "set-garbage": (["info", "--set", "no-equals"], ("--set", "KEY=VALUE")),
    "beta-400-digits": (
        ["bound", "--set", "check.beta=" + "1" * 400],
        ("check.beta", "400 digits"),
    ),
    "subsample-400-digits": (
        ["info", "--set", "data.subsample=" + "1" * 400],
        ("data.subsample", "400 digits", "2^63"),
    ),
    "set-deep": (["info", "--set", "model.widths=" + "[" * 3000 + "]" * 3000], ("--set",)),
    "set-unknown-key": (["info", "--set", "model.depth=3"], ("--set model.depth", "unknown key")),
    "rtol-one": (["simulate", "--rtol", "1"], ("--rtol", "0.1")),
    "save-suffix": (["simulate", "--save", "run.txt"], ("--save", ".npz")),
    "plot-suffix": (["simulate", "--plot", "run.gif"], ("--plot", ".png")),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_hostile_option(case: str, box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args, fragments = OPTION_CASES[case]
    monkeypatch.chdir(box)
    check_error_case(box, [args[0], "s.toml", *args[1:]], fragments)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [(["bound"], ("missing argument SPEC", "lazycheck bound --help")), (["prove"], ("prove",))],
)
def test_missing_argument_and_unknown_command(args, fragments, box: Path) -> None:
    check_error_case(box, args, fragments)


def test_help_still_works(box: Path) -> None:
    for args in (["--help"], ["bound", "--help"]):
        result = invoke(args)
        assert result.exit_code == 0 and "Usage:" in result.stdout


def test_usage_error_through_the_real_exit_path(box: Path) -> None:
    code, out, err = finish(run_child(["bound", "s.toml", "--seed", "1.5"], box))
    assert out == ""
    assert_one_error(code, err, ("--seed", "'1.5'"))


# ----------------------------------------------------------------------------- data files


def _csv_spec(box: Path, csv_name: str = "d.csv", features: str = '["a", "b"]') -> Path:
    path = box / "c.toml"
    text = (
        f'seed = 0\n[data]\nsource = "csv"\npath = "{csv_name}"\nfeatures = {features}\n'
        'target = "y"\n[model]\nwidths = [8]\n'
    )
    path.write_text(text, encoding="utf-8")
    return path


def _npy_spec(box: Path) -> Path:
    path = box / "n.toml"
    path.write_text(
        'seed = 0\n[data]\nsource = "npy"\npath = "X.npy"\ntarget_path = "y.npy"\n'
        "[model]\nwidths = [8]\n",
        encoding="utf-8",
    )
    return path


CSV_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "field-over-limit": ("a,b,y\n1,2," + "9" * 200_000 + "\n", ("d.csv", "field", "131072")),
    "no-rows": ("a,b,y\n", ("d.csv", "no data rows")),
    "not-a-number": ("a,b,y\n1,x,3\n", ("d.csv:2", "'x'")),
    "infinite": ("a,b,y\n1,inf,3\n", ("d.csv:2", "finite")),
    "ragged": ("a,b,y\n1,2\n", ("d.csv:2", "ragged")),
    "missing-column": ("a,c,y\n1,2,3\n", ("d.csv", "no column 'b'")),
    "huge-number": ("a,b,y\n1,2,1e400\n", ("d.csv:2", "finite")),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_hostile_csv(case: str, box: Path) -> None:
    text, fragments = CSV_CASES[case]
    (box / "d.csv").write_text(text, encoding="utf-8")
    check_error_case(box, ["info", _csv_spec(box)], fragments)


def test_csv_not_utf8(box: Path) -> None:
    (box / "d.csv").write_bytes(b"a,b,y\n1,2,\xff\n")
    check_error_case(box, ["info", _csv_spec(box)], ("d.csv", "UTF-8"))


def test_csv_data_path_is_a_device(box: Path) -> None:
    check_error_case(box, ["info", _csv_spec(box, "/dev/zero")], ("/dev/zero", "character device"))


def test_npy_with_zero_columns(box: Path) -> None:
    np.save(box / "X.npy", np.zeros((5, 0)))
    np.save(box / "y.npy", np.zeros(5))
    check_error_case(box, ["info", _npy_spec(box)], ("X.npy", "0 columns"))


def test_npy_of_objects_is_not_unpickled(box: Path) -> None:
    np.save(box / "X.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(box / "y.npy", np.zeros(1))
    check_error_case(box, ["info", _npy_spec(box)], ("X.npy", "cannot read"))


def test_npy_header_claiming_a_huge_array_is_refused_before_reading(box: Path) -> None:
    # a valid header for a (10^7, 10^4) array and no data: refused from the header alone
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**4)}
    with open(box / "X.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
    np.save(box / "y.npy", np.zeros(3))
    check_error_case(box, ["info", _npy_spec(box)], ("X.npy", "features", "TiB"))


def test_npz_that_expands_past_the_limit_is_refused(box: Path) -> None:
    np.savez_compressed(box / "d.npz", X=np.zeros((200_000, 2)), y=np.zeros(200_000))
    assert (box / "d.npz").stat().st_size < 200_000  # small on disk, 3.2 MB expanded
    spec = box / "z.toml"
    spec.write_text('[data]\nsource = "npz"\npath = "d.npz"\n[model]\nwidths = [8]\n')
    check_error_case(box, ["info", spec, "--memory-limit", "1M"], ("d.npz", "array 'X'", "MiB"))


def test_npz_missing_key(box: Path) -> None:
    np.savez(box / "d.npz", A=np.zeros((3, 2)), y=np.zeros(3))
    spec = box / "z.toml"
    spec.write_text('[data]\nsource = "npz"\npath = "d.npz"\n[model]\nwidths = [8]\n')
    check_error_case(box, ["info", spec], ("d.npz", "'X' is not in the archive"))


@pytest.mark.parametrize("what", ["spec", "data"])
def test_fifo_as_input_does_not_hang(what: str, box: Path) -> None:
    fifo = box / "pipe"
    os.mkfifo(fifo)
    target = fifo if what == "spec" else _csv_spec(box, "pipe")
    code, out, err = finish(run_child(["info", target], box), timeout=60)
    assert out == ""
    assert_one_error(code, err, ("pipe", "FIFO"))


# ----------------------------------------------------------------------------- outputs


def test_output_over_the_spec_is_refused(box: Path) -> None:
    check_error_case(box, ["verify", box / "s.toml", "-o", box / "s.toml"], ("-o", "input"))


def test_output_over_the_spec_by_another_name_is_refused(box: Path) -> None:
    (box / "link.toml").symlink_to(box / "s.toml")
    check_error_case(box, ["bound", box / "s.toml", "-o", box / "link.toml"], ("link.toml",))
    os.link(box / "s.toml", box / "hard.toml")
    check_error_case(box, ["bound", box / "s.toml", "-o", box / "hard.toml"], ("input",))


@pytest.mark.parametrize("command", ["info", "bound", "simulate", "verify", "kernel"])
def test_every_command_refuses_to_write_over_its_spec(command: str, box: Path) -> None:
    if command == "info":  # info has no -o: the option is a usage error
        check_error_case(box, [command, box / "s.toml", "-o", box / "s.toml"], ("-o",))
        return
    args = [command, box / "s.toml", "-o", box / "s.toml", "--no-progress"]
    check_error_case(box, args, ("-o", "input of this run"))


def test_verify_report_files_are_checked_together(box: Path) -> None:
    args = ["verify", box, "--junit", box / "r.xml", "-o", box / "r.xml", "--no-progress"]
    check_error_case(box, args, ("-o", "--junit", "own path"))
    # a directory of specs: every spec in it is an input
    check_error_case(box, ["verify", box, "-o", box / "s.toml"], ("-o", "input of this run"))
    check_error_case(box, ["verify", box, "--json", box / "r.txt"], ("--json", ".json"))


def test_output_over_a_python_model_file_is_refused(box: Path) -> None:
    import shutil

    shutil.copy(REPO / "samples" / "numpy_model.py", box / "numpy_model.py")
    text = (REPO / "samples" / "numpy_model.toml").read_text(encoding="utf-8")
    (box / "py.toml").write_text(text, encoding="utf-8")
    check_error_case(
        box, ["bound", box / "py.toml", "-o", box / "numpy_model.py"], ("-o", "input of this run")
    )


def test_output_over_a_data_file_is_refused(box: Path) -> None:
    (box / "d.csv").write_text("a,b,y\n1,2,3\n4,5,6\n1,0,1\n", encoding="utf-8")
    spec = _csv_spec(box)
    check_error_case(box, ["bound", spec, "-o", box / "d.csv"], ("-o", "d.csv", "input"))


def test_two_outputs_on_one_file_are_refused(box: Path) -> None:
    check_error_case(
        box,
        ["simulate", box / "s.toml", "--save", box / "x.npz", "-o", box / "sub/../x.npz"],
        ("-o", "--save"),
    )


def test_output_below_a_regular_file_is_refused(box: Path) -> None:
    (box / "f.txt").write_text("keep\n")
    check_error_case(
        box,
        ["bound", box / "s.toml", "-o", box / "f.txt/b.json"],
        ("-o", "f.txt/b.json", "Not a directory"),
    )


def test_output_that_is_a_directory_is_refused(box: Path) -> None:
    (box / "out").mkdir()
    check_error_case(box, ["bound", box / "s.toml", "-o", box / "out"], ("-o", "directory"))


def test_output_to_a_character_device_is_streamed_not_replaced(box: Path) -> None:
    before = os.stat("/dev/null")
    result = invoke(["bound", box / "s.toml", "-o", "/dev/null", "--no-progress"])
    assert result.exit_code == 0, result.output
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_output_to_a_full_device_is_one_line(box: Path) -> None:
    check_error_case(box, ["bound", box / "s.toml", "-o", "/dev/full"], ("-o /dev/full", "space"))


def test_output_to_a_fifo_without_reader_fails_without_hanging(box: Path) -> None:
    os.mkfifo(box / "out.fifo")
    before = snapshot(box)
    code, _out, err = finish(run_child(["bound", "s.toml", "-o", "out.fifo", "-f", "json"], box))
    assert_one_error(code, err, ("out.fifo", "no process is reading"))
    assert snapshot(box) == before


def test_output_to_a_fifo_with_a_reader_is_streamed(box: Path) -> None:
    fifo = box / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    time.sleep(0.2)
    code, _out, err = finish(run_child(["bound", "s.toml", "-o", "out.fifo", "-f", "json"], box))
    reader.join(timeout=30)
    assert code == 0, err
    assert got and b'"schema": "lazycheck.bound"' in got[0]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_symlinked_output_keeps_the_link_and_the_mode(box: Path) -> None:
    real = box / "real.json"
    real.write_text("old\n")
    real.chmod(0o640)
    (box / "link.json").symlink_to(real)
    result = invoke(["bound", box / "s.toml", "-o", box / "link.json", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert (box / "link.json").is_symlink()
    assert '"schema"' in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert not [p for p in os.listdir(box) if p.startswith(".")]


def test_output_in_a_new_directory_is_created(box: Path) -> None:
    result = invoke(["bound", box / "s.toml", "-o", box / "new/dir/b.json", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert (box / "new/dir/b.json").read_text().startswith("{")


def _outputs(box: Path) -> list[object]:
    return ["--save", box / "run.npz", "--csv", box / "run.csv", "-o", box / "run.json"]


def test_failed_simulate_writes_no_output_and_keeps_old_ones(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lazycheck.commands.simulate as sim

    real = sim.simulate

    def failing(*args, **kwargs):
        res = real(*args, **kwargs)
        return dataclasses.replace(res, success=False, status=-1, message="solver gave up")

    monkeypatch.setattr(sim, "simulate", failing)
    (box / "run.csv").write_text("previous run\n")
    check_error_case(box, ["simulate", box / "s.toml", *_outputs(box), "-f", "json"], ("gave up",))


def test_plotting_crash_writes_no_output(box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lazycheck.plotting as plotting

    def crash(*_args):
        raise RuntimeError("the figure could not be drawn")

    monkeypatch.setattr(plotting, "_figure", crash)
    args = ["simulate", box / "s.toml", *_outputs(box), "--plot", box / "run.png"]
    check_error_case(box, args, ("internal error", "RuntimeError", "figure"), want=3)


def test_successful_simulate_writes_every_output_and_no_temporary(box: Path) -> None:
    result = invoke(["simulate", box / "s.toml", *_outputs(box), "--no-progress", "-f", "json"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""
    names = sorted(os.listdir(box))
    assert names == ["run.csv", "run.json", "run.npz", "s.toml"]


def test_unwritable_output_names_the_users_path_not_a_temporary(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lazycheck.commands.simulate as sim

    def full_disk(result, problem):
        def write(tmp: Path) -> None:
            raise OSError(28, "No space left on device", str(tmp))

        return write

    monkeypatch.setattr(sim, "npz_writer", full_disk)
    args = ["simulate", box / "s.toml", "--save", box / "run.npz", "-o", box / "r.txt"]
    before = snapshot(box)
    result = invoke([*args, "--no-progress"])
    assert_one_error(result.exit_code, result.stderr, ("--save", str(box / "run.npz"), "space"))
    assert ".run.npz." not in result.stderr
    assert snapshot(box) == before


# ----------------------------------------------------------------------------- signals

_SLOW_SAVE = """
import sys, time
import numpy as np
real = np.savez
def slow(fh, **arrays):
    real(fh, **arrays)
    fh.flush()
    time.sleep(60)
np.savez = slow
from lazycheck.cli import main
sys.argv = ["lazycheck", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_while_writing_leaves_no_temporary(sig: int, code: int, box: Path) -> None:
    (box / "run.npz").write_bytes(b"previous")
    before = snapshot(box)
    args = ["simulate", "s.toml", "--save", "run.npz", "--no-progress"]
    proc = run_child(args, box, code=_SLOW_SAVE)
    deadline = time.monotonic() + 60
    while not any(n.startswith(".run.npz.") for n in os.listdir(box)):
        if proc.poll() is not None or time.monotonic() > deadline:
            finish(proc)
            pytest.fail("the temporary file never appeared")
        time.sleep(0.05)
    proc.send_signal(sig)
    rc, _out, err = finish(proc)
    assert_one_error(
        rc, err, ("terminated by SIGTERM" if sig == signal.SIGTERM else "interrupted",), code
    )
    assert snapshot(box) == before


# ----------------------------------------------------------------------------- numerics


@pytest.mark.parametrize(
    ("exc", "fragments", "code"),
    [
        (np.linalg.LinAlgError("SVD did not converge"), ("SVD did not converge", "sigma_w"), 2),
        (MemoryError(), ("out of memory", "--memory-limit"), 2),
        (OverflowError("math range error"), ("numerics failed", "OverflowError"), 2),
        (TypeError("unexpected"), ("internal error", "TypeError", "LAZYCHECK_DEBUG"), 3),
    ],
)
def test_unexpected_failures_are_one_line(exc, fragments, code, box, monkeypatch) -> None:
    import lazycheck.commands.bound

    def broken(*args, **kwargs):
        import warnings

        warnings.warn("overflow encountered in square", RuntimeWarning, stacklevel=1)
        raise exc

    monkeypatch.setattr(lazycheck.commands.bound, "compute_bound", broken)
    check_error_case(box, ["bound", box / "s.toml", "--no-progress"], fragments, want=code)


def test_runtime_warnings_do_not_reach_stderr(box: Path, monkeypatch) -> None:
    import lazycheck.commands.bound

    real = lazycheck.commands.bound.compute_bound

    def noisy(*args, **kwargs):
        np.array([1e300]) ** 2  # RuntimeWarning: overflow
        return real(*args, **kwargs)

    monkeypatch.setattr(lazycheck.commands.bound, "compute_bound", noisy)
    result = invoke(["bound", box / "s.toml", "--no-progress"])
    assert result.exit_code == 0 and result.stderr == ""


# ----------------------------------------------------------------------------- memory

GiB = 2**30


@pytest.mark.parametrize(
    ("command", "tables", "fragments"),
    [
        # simulate and verify decompose the n x n kernel: 200 000 points need 1.2 TiB
        ("simulate", {"data": {"n": "200000"}}, ("n = 200000", "reduce [data].n")),
        ("verify", {"data": {"n": "200000"}}, ("n = 200000", "TiB")),
        # bound at n = 8000, p = 6000: J (384 MiB) too big for an SVD, the kernel 2 GiB
        (
            "bound",
            {"data": {"n": "8000"}, "model": {"widths": "[1500]", "activation": '"identity"'}},
            ("n = 8000",),
        ),
        ("info", {"model": {"widths": "[400000000]"}}, ("weights", "reduce [model].widths")),
    ],
)
def test_memory_hungry_runs_are_refused_under_an_address_space_limit(
    command, tables, fragments, box: Path
) -> None:
    (box / "m.toml").write_text(spec_text(**tables), encoding="utf-8")
    before = snapshot(box)
    proc = run_child([command, "m.toml", "--no-progress"][:2 if command == "info" else 3], box,
                     address_space=3 * GiB // 2)  # fmt: skip
    code, out, err = finish(proc, timeout=120)
    if command == "bound" and code == 0:  # a matrix-free spectrum needs no dense kernel
        assert err == "" and "alpha" in out
    else:
        assert_one_error(code, err, ("--memory-limit", *fragments))
    assert snapshot(box) == before


def test_memory_limit_from_the_environment(box: Path) -> None:
    args = ["info", box / "s.toml", "--set", "data.n=100000"]
    check_error_case(box, args, ("needs", "1 MiB"), LAZYCHECK_MEMORY_LIMIT="1M")


# ----------------------------------------------------------------------------- JUnit reports


def _junit(result: Result):
    import xml.etree.ElementTree as ET

    return ET.fromstring(result.stdout)  # raises on invalid XML


def test_junit_with_a_control_character_in_the_spec_path_is_valid_xml(box: Path) -> None:
    odd = box / "a\x01b"
    odd.mkdir()
    (odd / "s.toml").write_text(spec_text(), encoding="utf-8")
    result = invoke(["verify", odd / "s.toml", "-f", "junit", "--no-progress"])
    assert result.exit_code in (0, 1), result.output
    suite = _junit(result)
    assert int(suite.get("tests")) == len(suite.findall("testcase"))


def test_junit_counts_the_solver_failure_case(box: Path, monkeypatch) -> None:
    import lazycheck.commands.simulate as sim

    real = sim.simulate

    def failing(*args, **kwargs):
        res = real(*args, **kwargs)
        return dataclasses.replace(res, success=False, status=-1, message="solver gave up")

    monkeypatch.setattr(sim, "simulate", failing)
    result = invoke(["verify", box / "s.toml", "-f", "junit", "--no-progress"])
    suite = _junit(result)
    assert int(suite.get("tests")) == len(suite.findall("testcase")) >= 1
    assert int(suite.get("errors")) >= 1
