"""`optiscale bench surrogate`: speed, k-grid convergence, sum rule and realism of the TB surrogate.

- speed: `data generate` at the default settings through `build_store` with 2 and 1 worker
  processes (materials/s, wall clock), plus the CPU time per material in one process, which does
  not depend on other jobs sharing the machine;
- convergence: each material at the default k-spacing against a reference grid of half the
  spacing (8x the k-points); criterion: similarity coefficient SC = 1 - int|d Im eps| / int|Im eps|
  over 0-20 eV (also for Re) and the relative change of the Drude frequency;
- sum rule: int_0^inf w Im eps dw + (pi/2) w_D^2 against (pi/2) x the band-curvature sum;
- realism: Drude frequencies and eps magnitudes of the generated set against the real samples,
  and (with --plots DIR) PNG figures of surrogate spectra next to the DFT ones.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from datamodules.atomic import atomic_write_json

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "optimetal"
REFERENCE_FACTOR = 0.5  # the reference grid: half the default spacings (8x the k-points)


def _sc(a: np.ndarray, ref: np.ndarray) -> float:
    return float(1 - np.abs(a - ref).sum() / np.abs(ref).sum())


def bench_speed(n: int, work: Path) -> dict:
    from datamodules.surrogate.generate import generate, load_generated
    from datamodules.surrogate.optics import OpticsSettings
    from datamodules.surrogate.prototypes import draw_specs

    out: dict = {"load_average_before": os.getloadavg()[0]}
    for workers, size in ((2, n), (1, n // 2)):
        t0 = time.perf_counter()
        generate(size, 1000 + workers, work / f"speed-{workers}", workers=workers, progress=False)
        out[f"materials_per_s_{workers}_workers"] = round(size / (time.perf_counter() - t0), 2)
    specs = draw_specs(min(n, 100), 77)
    c0 = time.process_time()
    for _ in load_generated(specs, 77, OpticsSettings()):
        pass
    out["materials_per_cpu_second_one_process"] = round(len(specs) / (time.process_time() - c0), 2)
    out["load_average_after"] = os.getloadavg()[0]
    out["note"] = "2 cores shared with other jobs: wall-clock rates depend on the load; the CPU-time rate does not"
    return out


def _convergence_rows(specs, default, dense):
    from datamodules.surrogate.hamiltonian import build_model
    from datamodules.surrogate.optics import compute_optics
    from datamodules.surrogate.prototypes import PROTOTYPES, structure_arrays

    rows, rule = [], []
    for _, name, el, strain, ca in specs:
        lat, z, cart = structure_arrays(PROTOTYPES[name], el, strain, ca)
        model = build_model(lat, z, cart)
        o = compute_optics(model, default, numbers=z, curvature=True)
        r = compute_optics(model, dense, numbers=z)
        e, er = o.eps_average(), r.eps_average()
        mae = (np.abs(e.imag - er.imag).mean(), np.abs(e.real - er.real).mean(), abs(o.drude - r.drude))
        rows.append((_sc(e.imag, er.imag), _sc(e.real, er.real), abs(o.drude / r.drude - 1), o.n_k, r.n_k, *mae))
        integral = np.trapezoid(o.omega * o.eps_im.mean(0), o.omega)
        rule.append(abs((integral + 0.5 * np.pi * o.drude2.mean()) / (0.5 * np.pi * o.curvature2.mean()) - 1))
    return rows, rule


def bench_convergence(n: int, seed: int = 7) -> dict:
    from datamodules.surrogate.generate import single_thread
    from datamodules.surrogate.optics import OpticsSettings
    from datamodules.surrogate.prototypes import draw_specs

    default = OpticsSettings()
    dense = default.scaled(REFERENCE_FACTOR)
    with single_thread():
        rows, rule = _convergence_rows(draw_specs(n, seed), default, dense)
    a = np.array(rows)
    q = lambda x: {"median": round(float(np.median(x)), 4), "p10": round(float(np.percentile(x, 10)), 4),  # noqa: E731
                   "p90": round(float(np.percentile(x, 90)), 4), "worst": None}  # fmt: skip
    sc_im, sc_re, drude = q(a[:, 0]), q(a[:, 1]), q(a[:, 2])
    sc_im["worst"], sc_re["worst"], drude["worst"] = (round(float(a[:, 0].min()), 4), round(float(a[:, 1].min()), 4),
                                                      round(float(a[:, 2].max()), 4))  # fmt: skip
    return {
        "materials": n,
        "default_k_spacing": [default.k_spacing, default.k_spacing_sp],
        "reference_k_spacing": [dense.k_spacing, dense.k_spacing_sp],
        "mean_irreducible_k_default": round(float(a[:, 3].mean()), 1),
        "mean_irreducible_k_reference": round(float(a[:, 4].mean()), 1),
        "criterion": "median SC(Im eps) >= 0.95 and median |dw_D|/w_D <= 0.02 vs the reference grid",
        "sc_im_eps": sc_im,
        "sc_re_eps": sc_re,
        "drude_rel_change": drude,
        "fraction_sc_im_above_0.9": round(float(np.mean(a[:, 0] >= 0.9)), 3),
        "label_noise_as_in_the_loss": {  # mean absolute differences on the 2001-point grid, as the L1 loss sees them
            "mae_im_eps_median": round(float(np.median(a[:, 5])), 4),
            "mae_re_eps_median": round(float(np.median(a[:, 6])), 4),
            "abs_drude_eV_median": round(float(np.median(a[:, 7])), 4),
        },
        "passed": bool(np.median(a[:, 0]) >= 0.95 and np.median(a[:, 2]) <= 0.02),
        "sum_rule_rel_error": {"median": float(f"{np.median(rule):.2e}"), "max": float(f"{np.max(rule):.2e}")},
    }


def _sample_records():
    from datamodules.records import read_json_record

    return [read_json_record(str(p)) for p in sorted(SAMPLES.glob("*.json"))] if SAMPLES.is_dir() else []


def bench_realism(store: Path) -> dict:
    from datamodules.store import GraphStore
    from datamodules.surrogate.generate import single_thread, spectra_of
    from datamodules.surrogate.optics import OpticsSettings

    s = GraphStore(store)
    eps = np.stack([s.read(i)["eps"] for i in range(len(s))])  # (n, P, 2)
    drude = np.load(store / "index" / "drude.npy")
    pct = lambda x: [round(float(v), 2) for v in np.percentile(x, [10, 50, 90])]  # noqa: E731
    band = slice(100, 501)  # 1-5 eV
    out: dict = {
        "generated": {
            "materials": len(s),
            "drude_eV_p10_p50_p90": pct(drude),
            "im_eps_max_p10_p50_p90": pct(eps[:, :, 1].max(1)),
            "im_eps_mean_1_5eV_p10_p50_p90": pct(eps[:, band, 1].mean(1)),
            "re_eps_at_0_p10_p50_p90": pct(eps[:, 0, 0]),
        },
        "samples": [],
    }
    for m in _sample_records():
        with single_thread():
            e, d = spectra_of(m.lattice, m.numbers, m.cart, OpticsSettings())
        out["samples"].append({
            "mat_id": m.mat_id, "formula": m.formula,
            "drude_dft": round(m.drude, 2), "drude_surrogate_same_structure": round(d, 2),
            "im_eps_max_dft": round(float(m.eps.imag.max()), 1), "im_eps_max_surrogate": round(float(e.imag.max()), 1),
            "im_eps_mean_1_5eV_dft": round(float(m.eps.imag[band].mean()), 1),
            "im_eps_mean_1_5eV_surrogate": round(float(e.imag[band].mean()), 1),
            "re_eps_at_0_dft": round(float(m.eps.real[0]), 1), "re_eps_at_0_surrogate": round(float(e.real[0]), 1),
            "sc_im_surrogate_vs_dft": round(_sc(e.imag, m.eps.imag), 3),
        })  # fmt: skip
    return out


def make_plots(store: Path, outdir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pymatgen.core import Composition

    from datamodules.surrogate.generate import spectra_of
    from datamodules.surrogate.optics import OpticsSettings
    from datamodules.surrogate.prototypes import PROTOTYPES, structure_arrays

    outdir.mkdir(parents=True, exist_ok=True)
    w = np.linspace(0, 20, 2001)
    paths = []
    for m in _sample_records():
        e_same, d_same = spectra_of(m.lattice, m.numbers, m.cart, OpticsSettings())
        els = tuple(str(x) for x in Composition(m.formula).elements)
        proto = PROTOTYPES["C1b-halfHeusler"] if len(els) == 3 else PROTOTYPES["B2-CsCl"]
        lat, z, cart = structure_arrays(proto, els[: len(proto.letters)], 0.0)
        e_proto, d_proto = spectra_of(lat, z, cart, OpticsSettings())
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, part, name in ((axes[0], "imag", "Im"), (axes[1], "real", "Re")):
            ax.plot(w, getattr(m.eps, part), "k", lw=1.6, label=f"DFT {m.mat_id}  (w_D {m.drude:.2f} eV)")
            ax.plot(w, getattr(e_same, part), "C0", lw=1.2, label=f"TB surrogate, same structure ({d_same:.2f} eV)")
            ax.plot(w, getattr(e_proto, part), "C1--", lw=1.0,
                    label=f"TB surrogate, {proto.name} {''.join(els)} ({d_proto:.2f} eV)")  # fmt: skip
            ax.set_xlim(0, 12)
            ax.set_xlabel("photon energy (eV)")
            ax.set_ylabel(f"{name} eps_inter")
            ax.axhline(0, color="0.7", lw=0.5)
        axes[0].set_ylim(0, None)
        axes[1].set_ylim(-15, None)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{m.formula}: DFT-IPA record vs tight-binding surrogate (not DFT)")
        fig.tight_layout()
        p = outdir / f"spectra_{m.formula}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(str(p))
    drude = np.load(store / "index" / "drude.npy")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(drude, bins=40, color="C0", alpha=0.8, label=f"surrogate ({drude.size} generated)")
    for i, m in enumerate(_sample_records()):
        ax.axvline(m.drude, color=f"C{i + 1}", lw=2, label=f"DFT sample {m.formula} ({m.drude:.2f} eV)")
    ax.set_xlabel("Drude frequency (eV)")
    ax.set_ylabel("materials")
    ax.legend(fontsize=8)
    fig.tight_layout()
    p = outdir / "drude_distribution.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    paths.append(str(p))
    return paths


def run(out: str, n: int = 400, n_convergence: int = 24, plots: str | None = None, workdir: str | None = None) -> dict:
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    work = Path(tmp.name) if tmp is not None else Path(str(workdir))
    from datamodules.surrogate.optics import OpticsSettings

    figures: dict = {"machine": {"cores": os.cpu_count(), "python": platform.python_version()},
                     "settings": OpticsSettings().as_dict()}  # fmt: skip
    figures["speed"] = bench_speed(n, work)
    figures["convergence"] = bench_convergence(n_convergence)
    figures["realism"] = bench_realism(work / "speed-2")
    if plots:
        figures["plots"] = make_plots(work / "speed-2", Path(plots))
    atomic_write_json(out, figures)
    print(json.dumps(figures, indent=1))
    if tmp:
        tmp.cleanup()
    return figures
