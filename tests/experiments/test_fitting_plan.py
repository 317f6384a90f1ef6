"""`optiscale plan` and the selection it rests on, against hand-computed values and known laws.

Truths: power law L = (x0/x)^alpha -> x(L) = x0 L^(-1/alpha); power + floor -> x(L) = x0 (L - L_inf)^(-1/alpha),
unreachable for L <= L_inf; the log-loss gain of doubling x under a power law is alpha ln 2.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from experiments.cli import main
from experiments.fitting import fit_runs
from experiments.fitting.forms import FORMS
from experiments.fitting.plan import floor_of, solve_x
from experiments.fitting.planner import plan_fits
from experiments.fitting.select import annotate, verdict

FAST = dict(starts=4, bootstrap=30, seed=0)


def test_x_needed_and_floor_by_hand():
    power, floor = FORMS["power"], FORMS["power_floor"]
    assert solve_x(power, {"x0": 1e4, "alpha": 0.3}, 0.5, 2500, 160000) == pytest.approx(1e4 * 2 ** (1 / 0.3))
    p = {"L_inf": 0.3, "x0": 5e3, "alpha": 0.5}
    assert solve_x(floor, p, 0.4, 2500, 160000) == pytest.approx(5e5)  # 5e3 * 0.1^-2
    assert solve_x(floor, p, 0.25, 2500, 160000) is None and floor_of(floor, p, 160000) == 0.3
    assert floor_of(power, {"x0": 1e4, "alpha": 0.3}, 160000) == 0.0


def test_verdict_needs_a_majority_and_a_break_inside_the_data():
    assert verdict([("power", 0.6, False), ("broken", 0.4, False)])[0] == "power"
    law, why = verdict([("power", 0.55, False), ("power_floor", 0.4, False), ("bnsl", 0.05, False)])
    assert law is None and "cannot tell apart power (55%), power_floor (40%)" in why and "bnsl" not in why
    law, why = verdict([("broken", 0.9, True), ("power", 0.1, False)])
    assert law is None and "break lies outside the data" in why


def _fake(form, xc, rep_aicc):
    params = {"xc": xc, "alpha1": 0.3, "alpha2": -0.1} if form == "broken" else {"x0": 1e4, "alpha": 0.3}
    return dict(
        model="m",
        axis="D",
        fixed={"N": 1},
        method="robust",
        form=form,
        params=params,
        status="ok",
        aicc=min(rep_aicc),
        x_range=[2500.0, 160000.0],
        _rep_aicc=rep_aicc,
    )


def test_a_broken_law_with_its_break_beyond_the_data_is_never_the_law():
    # the case: a broken law, break at D = 25,900 * 8, wins every replicate
    fits = annotate([_fake("broken", 207200.0, [-10.0] * 10), _fake("power", None, [-9.0] * 10)])
    broken, power = fits
    assert broken["selection_share"] == 1.0 and power["selection_share"] == 0.0
    assert not broken["law"] and not power["law"] and "outside the data" in broken["selection"]
    fits = annotate([_fake("broken", 20000.0, [-10.0] * 7 + [-8.0] * 3), _fake("power", None, [-9.0] * 10)])
    assert fits[0]["law"] and fits[0]["selection_share"] == pytest.approx(0.7)


def test_a_clear_power_law_wins_and_the_shares_sum_to_one(draw_runs):
    fits = fit_runs(draw_runs("power", (1e4, 0.3), rng_seed=1), axes=("D",), method="robust", **FAST)
    shares = {f["form"]: f["selection_share"] for f in fits}
    assert sum(shares.values()) == pytest.approx(1.0) and shares["power"] >= 0.6
    assert [f["form"] for f in fits if f["law"]] == ["power"]


def test_extrapolation_error_without_the_largest_two_by_hand(draw_runs):
    runs = draw_runs("power", (1e4, 0.3), noise=0.0)
    for r in runs:
        r["val_loss"] *= 1.1 if r["D"] >= 80000 else 1.0  # the last two points 10 % above the law
    (fit,) = fit_runs(runs, axes=("D",), method="robust", forms=["power"], starts=4, bootstrap=0)
    assert fit["extrapolation"]["drop_2"] == pytest.approx(math.log(1.1), rel=1e-4)  # exact fit on the first 5


def test_two_indistinguishable_forms_are_reported_so(draw_runs):
    # a power law with a small floor (0.03, a seventh of the smallest loss): this draw splits 47 / 53
    runs = draw_runs("power_floor", (0.03, 5e3, 0.5), noise=0.03, rng_seed=3)
    fits = fit_runs(runs, axes=("D",), method="robust", forms=["power", "power_floor"], **FAST)
    shares = sorted(f["selection_share"] for f in fits)
    assert shares[-1] < 0.6 and not any(f["law"] for f in fits), shares
    assert "cannot tell apart" in fits[0]["selection"]
    (entry,) = plan_fits(fits, 0.3)
    assert not entry["law_decided"] and {c["form"] for c in entry["candidates"]} == {"power", "power_floor"}


def test_a_target_below_the_floor_is_not_reachable(draw_runs):
    runs = draw_runs("power_floor", (0.3, 5e3, 0.5), noise=0.01, rng_seed=3)
    fits = fit_runs(runs, axes=("D",), method="robust", forms=["power_floor"], **FAST)
    (e,) = plan_fits(fits, 0.25)
    assert not e["reachable"] and e["x_needed"] is None and e["x_needed_ci95"] is None
    lo, hi = e["floor_ci95"]
    assert lo <= 0.3 <= hi and abs(e["floor"] - 0.3) < 0.02
    (e,) = plan_fits(fits, 0.4)  # truth 5e5
    lo, hi = e["x_needed_ci95"]
    assert e["reachable"] and lo <= 5e5 <= hi


def _cross(draw_runs, path=None):
    """A D sweep (power 0.3 at N=1,288,483) and an N sweep (power 0.2 at D=40,000) of one model."""
    runs = draw_runs("power", (1e4, 0.3), rng_seed=1)
    rng = np.random.default_rng(5)
    for n in (278275, 600000, 3000000, 8140195):
        for s in (1, 42, 137):
            runs.append(dict(model="m", D=40000, N=n, seed=s, val_loss=(2e5 / n) ** 0.2 * np.exp(0.02 * rng.normal())))
    if path:
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["model", "D", "N", "seed", "val_loss", "graphs_per_s", "epochs"])
            w.writeheader()
            w.writerows({**r, "graphs_per_s": 1e9 / r["N"], "epochs": 500} for r in runs)
    return runs


def test_diagnosis_from_two_1d_laws_finds_the_data_limit(draw_runs):
    fits = fit_runs(_cross(draw_runs), method="robust", forms=["power"], **FAST)
    entries = plan_fits(fits, 0.5)
    assert [(e["axis"], e["law"]) for e in entries] == [("D", "power"), ("N", "power")]
    for d in entries[0]["diagnosis"] + entries[1]["diagnosis"]:
        assert d["from"] == "1-D laws power (D) and power (N)"  # a cross is no grid: no 2-D law
        assert abs(d["gain_D_log"] - 0.3 * math.log(2)) < 0.01 and abs(d["gain_N_log"] - 0.2 * math.log(2)) < 0.01
        assert d["gain_D_ci95"][0] < d["gain_D_log"] < d["gain_D_ci95"][1]
        assert d["limited"] == "data" and d["p_data_limited"] == 1.0


def test_plan_cli_contract_with_a_csv(tmp_path, draw_runs, capsys):
    path = tmp_path / "runs.csv"
    runs = _cross(draw_runs, path)
    best = min(r["val_loss"] for r in runs if r["N"] == 1288483)
    target = 0.9 * best
    out = tmp_path / "plan.json"
    argv = [
        "plan",
        "--csv",
        str(path),
        "--target-loss",
        str(target),
        "--json",
        str(out),
        "--md",
        str(tmp_path / "p.md"),
    ]
    argv += ["--plot", str(tmp_path / "p.png"), "--forms", "power,power_floor", "--bootstrap", "20", "--starts", "3"]
    assert main(argv + ["--cost-per-material", "2.5"]) == 0
    plan = json.loads(out.read_text())
    assert isinstance(plan, list) and [(e["model"], e["axis"]) for e in plan] == [("m", "D"), ("m", "N")]
    for e in plan:
        assert {"model", "axis", "law", "target_loss", "reachable", "x_needed", "x_needed_ci95"} <= set(e)
        assert (
            e["law"] in ("power", "power_floor")
            and e["target_loss"] == pytest.approx(target, rel=1e-9)
            and e["reachable"] is True
        )
        lo, hi = e["x_needed_ci95"]
        assert lo <= e["x_needed"] <= hi
    d = plan[0]
    assert d["materials_to_compute"] == pytest.approx(d["x_needed"] - 160000)
    assert d["dft_core_hours"] == pytest.approx(2.5 * (d["x_needed"] - 160000))
    assert d["train_hours"] == pytest.approx(d["x_needed"] * 500 / (1e9 / 1288483) / 3600)
    n = plan[1]  # one run at D = 40,000 with the throughput at the needed N (1e9 / N, exact in log-log)
    assert n["train_hours"] == pytest.approx(40000 * 500 / (1e9 / n["x_needed"]) / 3600, rel=1e-6)
    assert n["materials_to_compute"] is None and n["dft_core_hours"] is None
    assert (tmp_path / "p.png").stat().st_size > 0 and "## m along D" in (tmp_path / "p.md").read_text()
    assert "m D: " in capsys.readouterr().out


def test_plan_bad_target_is_one_clear_line(tmp_path, draw_runs, capsys):
    path = tmp_path / "runs.csv"
    _cross(draw_runs, path)
    argv = ["plan", "--csv", str(path), "--target-loss", "-1", "--json", str(tmp_path / "p.json"), "--bootstrap", "2"]
    assert main(argv + ["--starts", "1", "--forms", "power"]) == 1
    assert capsys.readouterr().err == "optiscale: error: --target-loss must be a positive number, got -1.0\n"


def test_plan_reads_throughput_from_mlflow(tmp_path, mlflow_rows, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rows = []
    for d in (2500, 5000, 10000, 20000, 40000):
        for s, f in ((1, 1.0), (2, 1.01)):
            p = {"model": "2b-tc", "n_parameters": 1288483, "D": d, "seed": s, "epochs": 100}
            rows.append((p, {"best_val_loss": f * (1e4 / d) ** 0.3, "graphs_per_s": 400.0}, "FINISHED"))
    mlflow_rows(uri, "sweep", rows, tmp_path)
    out = tmp_path / "plan.json"
    argv = ["plan", "--experiment", "sweep", "--tracking-uri", uri, "--target-loss", "0.5", "--json", str(out)]
    assert main(argv + ["--forms", "power", "--bootstrap", "10", "--starts", "2"]) == 0
    (e,) = json.loads(out.read_text())
    assert e["x_needed"] == pytest.approx(1e4 * 2 ** (1 / 0.3), rel=0.02)  # the seeds differ by 1 %
    assert e["graphs_per_s"] == 400.0 and e["train_hours"] == pytest.approx(e["x_needed"] * 100 / 400 / 3600)
    assert e["dft_core_hours"] is None  # no --cost-per-material


def test_x_needed_interval_covers_the_truth_in_most_draws(draw_runs):
    """20 draws of a power law (alpha 0.3, 2 % noise, 3 seeds), target 10 % below the true loss at
    the largest D (truth D = 1e4 L^(-1/0.3), 1.42 x beyond the data), power and power + floor competing.
    Measured: 14 / 20 covered (70 %); with power alone over 60 draws 49 / 60 (82 %), the stated
    interval about 1.35 times too narrow (RMS z of log D 1.36): the bootstrap of 3 seeds per x
    underestimates the spread of the extrapolation. The test guards that figure, not 95 %."""
    target = 0.9 * (1e4 / 160000) ** 0.3
    truth = 1e4 * target ** (-1 / 0.3)
    covered = 0
    for i in range(20):
        runs = draw_runs("power", (1e4, 0.3), rng_seed=100 + i)
        fits = fit_runs(runs, axes=("D",), method="robust", forms=["power", "power_floor"], starts=4, bootstrap=50)
        (e,) = plan_fits(fits, target)
        lo, hi = e["x_needed_ci95"]
        covered += lo <= truth <= (hi or math.inf)
    assert covered >= 13, covered


def test_cheapest_nd_point_by_hand():
    """L = L0 + (N_c/N)^aN + (D_c/D)^aD; minimising D N^s on L = T gives (Lagrange)
    (N_c/N)^aN = (T - L0) s aD / (s aD + aN) and (D_c/D)^aD = (T - L0) aN / (s aD + aN)."""
    from experiments.fitting.plan2d import cheapest_point

    p = {"L0": 0.05, "alpha_N": 0.3, "alpha_D1": 0.4, "alpha_D2": 0.4, "N_c": 1e5, "D_c": 1e3}
    box = ((1e2, 1e14), (1.0, 1e12))
    for s, T in ((1.0, 0.2), (0.5, 0.3)):
        a, b = (T - 0.05) * s * 0.4 / (s * 0.4 + 0.3), (T - 0.05) * 0.3 / (s * 0.4 + 0.3)
        got = cheapest_point(FORMS["hoffmann"], p, T, box, s)
        assert got["N"] == pytest.approx(1e5 * a ** (-1 / 0.3), rel=1e-3)
        assert got["D"] == pytest.approx(1e3 * b ** (-1 / 0.4), rel=1e-3)
    assert cheapest_point(FORMS["hoffmann"], p, 0.04, box, 1.0) is None  # below the floor L0


def test_cost_source_order(tmp_path):
    from experiments.fitting.costs import material_cost

    store = tmp_path / "s"
    store.mkdir()
    (store / "manifest.json").write_text(json.dumps({"kind": "surrogate", "generation": {"seconds_per_material": 7.2}}))
    assert material_cost(str(store), None)["cost_source"] == "surrogate"
    assert material_cost(str(store), None)["cost_per_material_core_hours"] == pytest.approx(0.002)
    (store / "manifest.json").write_text(json.dumps({"dft_core_hours": {"per_material_mean": 8.5, "n_timed": 2}}))
    assert material_cost(str(store), None)["cost_source"] == "records"
    assert material_cost(str(store), 3.0)["cost_source"] == "flag"  # an explicit flag overrides the store
    assert material_cost(None, None)["cost_source"] is None


def test_dft_core_hours_of_a_record_by_hand():
    from datamodules.records import dft_core_hours

    doc = {"parameters": {"conv_time": 785.3974952697754, "nscf_time": 5.3654539585113525, "ncores": 16}}
    assert dft_core_hours(doc) == pytest.approx((785.3975 + 5.36545) * 16 / 3600, rel=1e-6)
    assert dft_core_hours({"parameters": {"conv_time": 1.0}}) is None


def test_fixed_steps_epochs_by_hand():
    from experiments.training.config import epochs_for_steps

    # quick recipe, batch 64: D = 100 takes 2 steps an epoch, D = 3200 takes 50
    assert [epochs_for_steps(2000, d, 64, 1) for d in (100, 3200)] == [1000, 40]


def test_plan_costs_dft_from_the_records_of_the_runs_store(tmp_path, samples_dir, mlflow_rows, capsys):
    """End to end: the two published records imported into a store, runs whose `data` param names it,
    `plan --experiment` with no cost flag: the cost per material is the records' own timing, worked
    out here from their raw fields ((conv_time + nscf_time) * ncores / 3600, mean over the records)."""
    store = tmp_path / "store"
    assert main(["data", "import", str(samples_dir), "--out", str(store)]) == 0
    hours = []
    for f in sorted(samples_dir.glob("*.json")):
        p = json.loads(f.read_text())["parameters"]
        hours.append((p["conv_time"] + p["nscf_time"]) * p["ncores"] / 3600)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rows = []
    for d in (2500, 5000, 10000, 20000, 40000):
        for s, f in ((1, 1.0), (2, 1.01)):
            p = {"model": "2b-tc", "n_parameters": 1288483, "D": d, "seed": s, "epochs": 100, "data": str(store)}
            rows.append((p, {"best_val_loss": f * (1e4 / d) ** 0.3}, "FINISHED"))
    mlflow_rows(uri, "dft", rows, tmp_path)
    out = tmp_path / "plan.json"
    argv = ["plan", "--experiment", "dft", "--tracking-uri", uri, "--target-loss", "0.5", "--json", str(out)]
    assert main(argv + ["--forms", "power", "--bootstrap", "10", "--starts", "2"]) == 0
    (e,) = json.loads(out.read_text())
    assert e["cost_source"] == "records" and e["cost_store"] == str(store)
    assert e["cost_per_material_core_hours"] == pytest.approx(np.mean(hours), rel=1e-6)
    assert e["dft_core_hours"] == pytest.approx(np.mean(hours) * (e["x_needed"] - 40000), rel=1e-6)
    assert "(source: records)" in capsys.readouterr().out


def test_plan_from_a_d_and_an_n_experiment_diagnoses_from_both_laws(tmp_path, draw_runs, mlflow_rows, capsys):
    """The D sweep and the N sweep of one recipe in two experiments (as `make sweep-data` and
    `make sweep-params` write them); their shared point (D=40,000, N=1,288,483) is used once."""
    runs = _cross(draw_runs)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def rows(sel):
        return [
            (
                {"model": r["model"], "n_parameters": r["N"], "D": r["D"], "seed": r["seed"]},
                {"best_val_loss": r["val_loss"]},
                "FINISHED",
            )
            for r in runs
            if sel(r)
        ]

    mlflow_rows(uri, "x-D", rows(lambda r: r["N"] == 1288483), tmp_path / "d")
    n_sweep = rows(lambda r: r["D"] == 40000)  # includes the D sweep's last point, once more
    mlflow_rows(uri, "x-N", n_sweep, tmp_path / "n")
    out = tmp_path / "plan.json"
    argv = ["plan", "--experiment", "x-D", "--experiment", "x-N", "--tracking-uri", uri, "--target-loss", "0.5"]
    assert main(argv + ["--json", str(out), "--forms", "power", "--bootstrap", "10", "--starts", "2"]) == 0
    plan = json.loads(out.read_text())
    assert [(e["axis"], e["law"]) for e in plan] == [("D", "power"), ("N", "power")]
    assert all(d["from"] == "1-D laws power (D) and power (N)" for e in plan for d in e["diagnosis"])
    printed = capsys.readouterr().out
    assert printed.count("repeats a point of x-D") == 3  # the 3 seeds of the shared point
    assert "MLflow experiments 'x-D', 'x-N'" in printed
