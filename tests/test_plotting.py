"""The simulate figure tells the verdict in every case: alpha, alpha_min, B' against B and the
verdict in its banner, B drawn, violated stretches marked, the sigma panel on a log axis,
every band in a legend; ``plot_run`` returns the Figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import verified_sample
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba

from lazycheck.plotting import VERDICT_COLORS, plot_run

SAMPLES = ("two_layer_tanh", "narrow_plateau", "wrong_beta", "p_le_n", "relu", "uncentered")
TITLES = {"loss": "loss", "disp": "distance from initialization"}


def _panels(fig) -> dict:
    out = {}
    for ax in fig.axes:
        title = ax.get_title()
        if title == "loss":
            out["loss"] = ax
        elif title.startswith("distance"):
            out["disp"] = ax
        elif title.startswith("singular"):
            out["sig"] = ax
        elif not ax.axison:
            out["banner"] = ax
    assert set(out) == {"loss", "disp", "sig", "banner"}
    return out


def _labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.fixture(scope="module")
def figures() -> dict:
    out = {}
    for name in SAMPLES:
        rep = verified_sample(name)
        assert rep.simulation is not None
        out[name] = (rep, plot_run(rep.simulation, report=rep))
    return out


@pytest.mark.parametrize("name", SAMPLES)
def test_banner_states_alpha_alpha_min_radii_and_verdict(figures, name) -> None:
    rep, fig = figures[name]
    texts = [t for t in _panels(fig)["banner"].texts]
    head, verdict = texts[0].get_text(), texts[1].get_text()
    assert f"alpha = {rep.alpha:g}" in head
    assert f"alpha = {rep.alpha:g}" in verdict and "B' = " in verdict and " B = " in verdict
    sol = rep.bound.solutions.get(rep.bound.beta_basis)
    if sol is not None and sol.feasible:
        assert f"alpha_min = {sol.alpha_min:.4g}" in verdict
    else:
        assert "no alpha satisfies it" in verdict
    assert f"verdict ({rep.status})" in verdict
    assert rep.message[:40] in verdict.replace("\n", " ")
    assert to_rgba(texts[1].get_color()) == to_rgba(VERDICT_COLORS[rep.status])


@pytest.mark.parametrize("name", SAMPLES)
def test_every_band_has_a_legend_entry_and_sigma_is_log(figures, name) -> None:
    rep, fig = figures[name]
    panels = _panels(fig)
    for key in ("loss", "disp", "sig"):
        ax = panels[key]
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)] + list(ax.patches)
        assert bands or key == "disp"
        for band in bands:
            assert not band.get_label().startswith("_"), (key, band)
            assert band.get_label() in _labels(ax), (key, band.get_label())
    sig = panels["sig"]
    assert sig.get_yscale() == "log"
    lo, _ = sig.get_ylim()
    smin_t = np.asarray(rep.simulation.sigma_min_t)
    positive = smin_t[smin_t > 0]
    assert lo > 0 and (not positive.size or lo < positive.min())


@pytest.mark.parametrize("name", SAMPLES)
def test_B_is_drawn_and_a_failing_radius_hypothesis_is_shaded(figures, name) -> None:
    rep, fig = figures[name]
    disp = _panels(fig)["disp"]
    B = rep.bound.quantity("B").value
    Bp = rep.bound.quantity("B_prime").value
    labels = _labels(disp)
    if math.isfinite(B) and B > 0:
        levels = [ln.get_ydata()[0] for ln in disp.lines if len(set(ln.get_ydata())) == 1]
        assert any(math.isclose(v, B) for v in levels)
        assert any(lab.startswith("B = ") for lab in labels)
        assert ("B' > B: hypothesis fails" in labels) == (Bp > B)
    else:
        assert any("no ball on which beta holds" in lab for lab in labels)


def test_violations_are_marked_where_verify_finds_them(figures) -> None:
    rep, fig = figures["narrow_plateau"]
    panels = _panels(fig)
    broke = {c.id for c in rep.checks if c.held is False}
    assert {"theorem2.loss", "lemma6.sigma_min_trajectory"} <= broke
    assert any(lab.startswith("VIOLATED: above Theorem 2") for lab in _labels(panels["loss"]))
    assert any("sigma_min below" in lab for lab in _labels(panels["sig"]))
    rep, fig = figures["two_layer_tanh"]
    assert rep.status == "pass"
    for key in ("loss", "disp", "sig"):
        assert not any("VIOLATED" in lab for lab in _labels(_panels(fig)[key]))


def test_plot_run_returns_the_figure_and_writes_only_when_asked(tmp_path) -> None:
    from matplotlib.figure import Figure

    rep = verified_sample("two_layer_tanh")
    fig = plot_run(rep.simulation)  # no report: the banner says no verdict was computed
    assert isinstance(fig, Figure)
    assert "no verdict computed" in _panels(fig)["banner"].texts[1].get_text()
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "run.svg"
    assert isinstance(plot_run(rep.simulation, path, rep), Figure)
    assert path.read_text().lstrip().startswith("<?xml")
