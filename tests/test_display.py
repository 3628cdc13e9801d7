"""The Python API in a notebook: short reprs, rich and HTML display, ``render()`` without a
console, and ``run_verify`` reusing a bound and a simulation already computed."""

from __future__ import annotations

import io

import pytest
from helpers import SAMPLES, verified_sample

from lazycheck.display import REPR_LIMIT


@pytest.fixture(scope="module")
def rep():
    return verified_sample("two_layer_tanh")


@pytest.fixture(params=["verify", "bound", "simulation"])
def result(request, rep):
    return {"verify": rep, "bound": rep.bound, "simulation": rep.simulation}[request.param]


def test_repr_is_short_and_says_what_it_is(result) -> None:
    text = repr(result)
    assert len(text) < REPR_LIMIT, (len(text), text)
    assert text.startswith(type(result).__name__ + "(")
    assert "array(" not in text and "\n" not in text
    status = result.outcome if type(result).__name__ == "SimulationResult" else result.status
    assert repr(status) in text


def test_repr_html_holds_the_report(result) -> None:
    html = result._repr_html_()
    assert html.lstrip().startswith("<!DOCTYPE html>") or "<pre" in html
    first = {
        "VerifyReport": "theorem2.loss",
        "BoundReport": "alpha_min",
        "SimulationResult": "loss",
    }
    assert first[type(result).__name__] in html


def test_rich_protocol_and_render_without_a_console(result, capsys) -> None:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=200).print(result)  # rich's __rich_console__ protocol
    result.render()  # a stdout console by default
    out = capsys.readouterr().out
    assert out.strip() and buf.getvalue().strip()
    assert out.strip().splitlines()[-1] == buf.getvalue().strip().splitlines()[-1]


def test_run_verify_reuses_a_precomputed_bound_and_simulation(rep, monkeypatch) -> None:
    import lazycheck.commands.bound
    import lazycheck.commands.simulate
    import lazycheck.commands.verify
    from lazycheck.problem import load_problem

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed")

    monkeypatch.setattr(lazycheck.commands.verify, "compute_bound", refuse)
    monkeypatch.setattr(lazycheck.commands.bound, "compute_bound", refuse)
    monkeypatch.setattr(lazycheck.commands.simulate, "simulate", refuse)
    prob = load_problem(SAMPLES / "two_layer_tanh.toml")
    again = lazycheck.commands.verify.run_verify(prob, bound=rep.bound, simulation=rep.simulation)
    assert again.bound is rep.bound and again.simulation is rep.simulation
    assert [(c.id, c.status, c.observed) for c in again.checks] == [
        (c.id, c.status, c.observed) for c in rep.checks
    ]
    with pytest.raises(AssertionError, match="recomputed"):
        lazycheck.commands.verify.run_verify(prob, simulation=rep.simulation)  # bound still needed
