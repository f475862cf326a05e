"""A dossier without contradictions: checklist answers derived from the run (with and without
comparators, binary and survival, with and without model segmentation and a deep model), counts
printed as integers, each utility figure once, a colour-blind-safe palette."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from fake_results import make_results

from acceflow.report import html as h
from acceflow.report.checklist_answers import ANSWERS
from acceflow.report.dossier import CHECKLISTS, build_dossier, checklist_answers, load_checklist, summarise
from acceflow.report.view import ResultsView


def _view(root, **kw):
    config = make_results(root, **kw)
    view = ResultsView(root, config, ["train", *config["cohorts"]["external"]])
    return view


def _answers(root, **kw) -> dict:
    """(checklist, item id) -> Answer for a fake run with options ``kw``."""
    view = _view(root, **kw)
    if not kw.get("survival"):
        summarise(view)
    return {(key, str(i["id"])): a for key, items in checklist_answers(view).items() for i, a in items}


def _render(root, **kw) -> str:
    config = make_results(root, **kw)
    cohorts = ["train", *config["cohorts"]["external"]]
    build_dossier(root, config, cohorts, root / "report" / "dossier.html", root / "report" / "summary.json",
                  provenance={"created": "2024-01-01T00:00:00Z", "commit": "deadbeef", "versions": {}})
    return (root / "report" / "dossier.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return _answers(tmp_path_factory.mktemp("plain"))


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    return _answers(tmp_path_factory.mktemp("compared"), comparators=("clinical", "combined_early"))


# ------------------------------------------------------------------------------------ checklists


def test_every_answer_named_by_a_checklist_exists_and_every_answer_is_used():
    named = {i["answer"] for key in CHECKLISTS for i in load_checklist(key)["items"] if i.get("answer")}
    assert named <= set(ANSWERS), named - set(ANSWERS)
    assert set(ANSWERS) <= named, set(ANSWERS) - named
    for key in CHECKLISTS:  # no static answer text left in the checklist files
        for item in load_checklist(key)["items"]:
            assert not {"where", "note"} & set(item), (key, item["id"])


def test_comparison_items_follow_the_comparators_built(plain, compared):
    for item in ("41", "42", "48"):
        assert plain[("clear", item)].status == "author"
        assert "No comparator model was built in this run" in plain[("clear", item)].note
        assert compared[("clear", item)].status == "covered", item
        assert compared[("clear", item)].where == "#model-comparison"
    assert "Paired DeLong" in compared[("clear", "41")].note and "combined_early" in compared[("clear", "41")].note
    assert "clinical" in compared[("clear", "48")].note
    assert not [k for k, a in compared.items() if re.search("no comparator", a.note, re.I)]


def test_comparison_link_resolves_in_the_rendered_dossier(tmp_path):
    html = _render(tmp_path, comparators=("clinical",))
    appendix = html[html.index('id="checklists"'):]
    assert 'href="#model-comparison"' in appendix and 'id="model-comparison"' in html
    assert not re.search("no comparator", html, re.I)
    assert "p (paired DeLong)" in html  # the comparison the checklist points at is in the dossier


def test_deep_comparator_alone_is_not_a_clinical_comparison(tmp_path):
    a = _answers(tmp_path, deep=True)
    assert a[("clear", "41")].status == "covered" and "deep" in a[("clear", "41")].note
    assert a[("clear", "42")].status == "partly" and "no clinical-only or combined model" in a[("clear", "42")].note


def test_survival_and_binary_outcomes_are_described_as_run(plain, tmp_path):
    surv = _answers(tmp_path, survival=True)
    assert "binary" in plain[("tripod-ai", "8a")].note and "time to event" not in plain[("tripod-ai", "8a")].note
    assert "Time to event" in surv[("tripod-ai", "8a")].note or "time to event" in surv[("tripod-ai", "8a")].note
    assert "365" in surv[("tripod-ai", "8a")].note
    assert "Harrell C" in surv[("clear", "47")].note and "AUC" in plain[("clear", "47")].note
    assert "Time-to-event outcome" in surv[("clear", "30")].note and "Training prevalence" in plain[("clear", "30")].note


def test_segmentation_items_follow_the_segmentation_source(plain, tmp_path_factory):
    model = _answers(tmp_path_factory.mktemp("seg_model"), segmentation="model")
    otsu = _answers(tmp_path_factory.mktemp("seg_otsu"), segmentation="otsu")
    assert plain[("clear", "19")].status == "author" and "feature table" in plain[("clear", "19")].note
    assert model[("clear", "19")].where == "#segmentation" and "MONAI" in model[("clear", "19")].note
    assert "otsu" in otsu[("clear", "19")].note.lower() and otsu[("clear", "19")].where == "#config"
    assert model[("clear", "31")].status == "covered" and "Dice between repeated masks: median 0.850 over 3" in \
        model[("clear", "31")].note
    assert plain[("clear", "31")].status == "partly" and "Dice" not in plain[("clear", "31")].note
    for item in ("21", "22", "23", "25"):  # image pre-processing is the run's only when it started from images
        assert plain[("clear", item)].status == "author" and otsu[("clear", item)].status == "covered", item


def test_external_cohorts_and_reproducibility_change_the_answers(plain, tmp_path):
    internal = _answers(tmp_path, validation="internal", repeats=False)
    assert "external validation on site_B" in plain[("clear", "15")].note
    assert "internal validation only" in internal[("clear", "15")].note
    assert internal[("tripod-ai", "12d")].status == "author" and plain[("tripod-ai", "12d")].status == "partly"
    assert internal[("clear", "46")].status == "author" and plain[("clear", "46")].where == "analytical/icc.tsv"
    assert "12 features: ICC(2,1)" in plain[("clear", "46")].note


# ------------------------------------------------------------------------------------- counts


def test_counts_read_as_floats_print_as_integers(tmp_path):
    html = _render(tmp_path, float_counts=True)
    text = re.sub(r'src="data:[^"]*"', "", html)
    assert "<td>90</td><td>32</td>" in text  # site_B's calibration row: n, events
    assert not re.search(r"<td>(90|120|32|48)\.0+</td>", text)
    assert not re.search(r"\b(90|120)\.0\b", text)


def test_with_integer_counts_converts_only_whole_counts():
    df = pd.DataFrame({"n": [51.0, np.nan], "n_events": [3.0, 4.0], "icc": [1.0, 0.5], "n_ratio": [0.5, 1.0]})
    out = h.with_integer_counts(df)
    assert str(out["n"].dtype) == "Int64" and out["n"].iloc[0] == 51 and out["n"].isna().iloc[1]
    assert str(out["n_events"].dtype) == "Int64"
    assert out["icc"].dtype == float and out["n_ratio"].dtype == float  # not counts / not whole numbers
    assert h.with_integer_counts({"n": 51.0, "auc": 1.0, "cohorts": [{"n_events": 7.0}]}) == \
        {"n": 51, "auc": 1.0, "cohorts": [{"n_events": 7}]}
    assert h.num(h.count(51.0)) == "51" and h.num(h.count(float("nan"))) == "—" and h.count(2.5) == 2.5
    assert h.num(out["n"].iloc[0]) == "51" and h.num(out["n"].iloc[1]) == "—"
    assert json.dumps(h.with_integer_counts({"n_train": 60.0})) == '{"n_train": 60}'
    assert yaml.safe_dump(h.with_integer_counts({"jobs": 2.0})).strip() == "jobs: 2"


# ------------------------------------------------------------------------------------ figures


def test_each_utility_figure_once_per_cohort(tmp_path):
    html = _render(tmp_path, comparators=("clinical", "combined_early"))
    alts = re.findall(r'<img [^>]*alt="([^"]+)"', html)
    for cohort in ("train", "site_B"):
        assert alts.count(f"calibration {cohort}") == 1, alts
        assert alts.count(f"decision_curve {cohort}") == 1, alts
    assert not [a for a in alts if "model comparison" in a]


def _simulate(hex_colour, matrix):
    """A colour as seen with a colour-vision deficiency (Machado, Oliveira & Fernandes 2009, severity 1),
    in linear RGB."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return np.clip(matrix @ lin, 0, 1)


_DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                          [-0.011820, 0.042940, 0.968881]])
_PROTANOPIA = np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                        [-0.003882, -0.048116, 1.051998]])


def _min_cvd_distance(colours) -> float:
    colours = list(colours)
    return min(np.linalg.norm(_simulate(a, m) - _simulate(b, m)) for m in (_DEUTERANOPIA, _PROTANOPIA)
               for i, a in enumerate(colours) for b in colours[i + 1:])


def test_palettes_stay_distinct_for_red_green_colour_blindness():
    from acceflow.report import figures as F
    from acceflow.report import utility_figures as U

    assert U.MODEL_COLOURS is F.MODEL_COLOURS  # one owner
    threshold = 0.08
    assert _min_cvd_distance(["#2ca02c", "#d62728"]) < threshold  # matplotlib's old green/red pair fails
    assert _min_cvd_distance(["#1b7837", "#b2182b"]) < threshold  # the former risk-group pair fails
    for name, colours in (("models", F.MODEL_COLOURS.values()), ("risk groups", F.RISK_GROUP_COLOURS.values()),
                          ("Koo & Li", F.KOO_LI_COLOURS.values()), ("outcome", F.OUTCOME_COLOURS.values()),
                          ("overlay", F.OVERLAY_COLOURS.values()), ("cohorts", F.PALETTE[:6])):
        assert _min_cvd_distance(colours) >= threshold, name
    assert F._RC["axes.prop_cycle"].by_key()["color"] == F.PALETTE  # the style every figure is drawn in


def test_no_colour_is_defined_outside_the_palette_owner():
    from pathlib import Path

    from acceflow.report import figures as F

    folder = Path(F.__file__).parent
    for path in folder.glob("*.py"):
        if path.name in ("figures.py", "rulegraph.py"):  # the owner; the rule graph's SVG boxes
            continue
        text = path.read_text(encoding="utf-8")
        for hexcode in re.findall(r'"(#[0-9a-fA-F]{6})"', text):
            r, g, b = (hexcode[i:i + 2] for i in (1, 3, 5))
            assert r == g == b, (path.name, hexcode)  # greys only
        assert not re.search(r'colou?rs?="(red|green|lime|magenta|tab:\w+)"', text), path.name


def test_primary_decision_curve_is_drawn_last_on_top_and_thickest(tmp_path):
    from acceflow.report import utility_figures as U

    root = tmp_path
    make_results(root)
    curve = pd.read_csv(root / "utility" / "site_B" / "decision_curve.tsv", sep="\t")
    worse = curve.assign(net_benefit_model=curve["net_benefit_model"] - 0.01)
    curves = {"clinical": worse, "imaging": curve, "combined_early": worse}  # primary not first, not last
    fig = U.decision_curves_figure(curves, None, "t", "imaging")
    ax = fig.axes[0]
    models = [line for line in ax.lines if line.get_label() in ("clinical", "combined_early", "imaging (primary)")]
    primary = models[-1]
    assert primary.get_label() == "imaging (primary)"
    assert primary.get_zorder() == max(line.get_zorder() for line in ax.lines)
    assert primary.get_linewidth() > max(line.get_linewidth() for line in models[:-1])
    low, high = ax.get_ylim()
    y = primary.get_ydata()
    assert ((y >= low) & (y <= high)).mean() > 0.5  # visible within the axes
    U.F.plt.close(fig)


def test_km_number_at_risk_matches_lifelines_add_at_risk_counts():
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    from acceflow.metrics.survival import km_by_group
    from acceflow.report import figures as F

    rng = np.random.default_rng(3)
    time = np.round(rng.exponential(400, 80)) + 1
    event = (rng.uniform(size=80) < 0.7).astype(int)
    group = (rng.uniform(size=80) < 0.5).astype(int)
    ticks = [0, 200, 400, 800, 1200]
    for g, info in km_by_group(time, event, group).items():
        ours = F.at_risk_counts(info["table"], ticks)
        kmf = KaplanMeierFitter().fit(time[group == g], event[group == g])
        fig, ax = F.plt.subplots()
        kmf.plot_survival_function(ax=ax)
        ax.set_xlim(0, 1300)
        add_at_risk_counts(kmf, ax=ax, xticks=ticks, rows_to_show=["At risk"])
        counts_axis = fig.axes[-1]  # lifelines draws the counts as tick labels of a twin axis
        theirs = [int(t.get_text().strip().split()[-1]) for t in counts_axis.get_xticklabels()]
        F.plt.close(fig)
        assert ours == theirs, (g, ours, theirs)
        assert ours[0] == int((group == g).sum())


def test_km_figure_carries_a_number_at_risk_table():
    from acceflow.metrics.survival import km_by_group
    from acceflow.report import figures as F

    rng = np.random.default_rng(5)
    time, event = rng.exponential(300, 60) + 1, (rng.uniform(size=60) < 0.6).astype(int)
    group = np.repeat([0, 1], 30)
    table = pd.concat([info["table"].assign(group=g, n=info["n"])
                       for g, info in km_by_group(time, event, group).items()])
    fig = F.km_figure({"site_B": table})
    ax = fig.axes[0]
    assert len(ax.tables) == 1
    cells = ax.tables[0].get_celld()
    assert cells[(0, 0)].get_text().get_text() == "30" and cells[(1, 0)].get_text().get_text() == "30"
    F.plt.close(fig)
    old = F.km_figure({"site_B": table.drop(columns=["at_risk", "events", "censored"])})  # an older results folder
    assert not old.axes[0].tables
    F.plt.close(old)


def test_every_answer_reads_as_a_sentence(plain, compared):
    for answers in (plain, compared):
        for key, a in answers.items():
            assert a.status in ("covered", "partly", "author"), key
            if a.note:
                assert re.match(r"[A-Z0-9<]|acceflow ", a.note) and a.note.rstrip().endswith((".", "…")), (key, a.note)
            assert a.status == "author" or a.where, key
