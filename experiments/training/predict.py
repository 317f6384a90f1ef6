"""`optiscale predict`: eps(w), Drude frequency and reflectance of CIF/POSCAR structures.

The checkpoint carries the resolved training configuration (model, width, grid), so nothing else
is needed. Per structure NAME the output directory gets NAME.json (everything), NAME.csv (the
spectra) and NAME.png (Re/Im eps and reflectance); `predictions.csv` has one row per input file
(Drude frequency or the error) and `summary.json` lists what was predicted and what failed. A bad
file (unreadable, disordered, elements beyond Rn, overlapping atoms, ...) fails alone with a
reason naming it; the others are still predicted.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from datamodules.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

GAMMA = 0.1  # eV, Drude broadening of the reflectance (as in lightning_modules.colour)


class StructureError(ValueError):
    """A structure file that cannot be predicted."""


def read_structure(path: str):
    """A pymatgen Structure from a CIF or POSCAR file (format from the name, else tried in turn)."""
    from pymatgen.core import Structure

    p = Path(path)
    if not p.is_file():
        raise StructureError(f"no such file: {path}")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise StructureError(f"unreadable file ({type(err).__name__}: {err})") from None
    name = p.name.lower()
    formats = ["cif", "poscar"] if name.endswith(".cif") or "poscar" not in name else ["poscar", "cif"]
    errors = []
    for fmt in formats:
        try:
            structures = [Structure.from_str(text, fmt=fmt)]  # type: ignore[arg-type]  # 'cif' or 'poscar'
            break
        except Exception as err:  # pymatgen raises many kinds on malformed input
            errors.append(f"{fmt}: {type(err).__name__}: {err}".strip()[:200])
    else:
        raise StructureError("not a readable CIF or POSCAR (" + "; ".join(errors) + ")")
    s = structures[0]
    if len(s) == 0:
        raise StructureError("the structure has no sites")
    if not s.is_ordered:
        raise StructureError("the structure has partially occupied (disordered) sites")
    return s


def graph_record(structure, cutoff: float) -> dict:
    """The store-record arrays of a structure (targets zero), ready for the loader's Collate."""
    from datamodules.graphs import GraphError, build_graph

    try:
        g = build_graph(structure.lattice.matrix, structure.atomic_numbers, structure.cart_coords, cutoff)
    except GraphError as err:
        raise StructureError(str(err)) from None
    return {
        "numbers": g.numbers.astype(np.uint8),
        "pos": g.cart.astype(np.float32),
        "lattice": g.lattice.astype(np.float32),
        "edge_index": g.edge_index.astype(np.int32),
        "edge_vec": g.edge_vec,
        "eps": None,
        "drude": np.zeros(1, dtype=np.float32),
        "idx": 0,
    }


def load_module(ckpt: str):
    from lightning_modules.module import SpectraModule

    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"no such checkpoint: {ckpt}")
    try:
        module = SpectraModule.load_from_checkpoint(ckpt, map_location="cpu")
    except Exception as err:
        raise ValueError(f"{ckpt} is not an optiscale training checkpoint ({type(err).__name__}: {err})") from None
    return module.eval()


def _names(files: list[str]) -> list[str]:
    """Distinct output names from the file names."""
    out, used = [], set()
    for f in files:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(f).name) or "structure"
        name, k = base, 2
        while name in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        out.append(name)
    return out


def predict(ckpt: str, files: list[str], out: str, plot: bool = True) -> dict:
    """Predict every file; returns {"checkpoint", "predicted": [...], "failed": [{"file", "reason"}]}."""
    import torch

    from datamodules.datamodule import Collate
    from datamodules.graphs import CUTOFF, THREEBODY_CUTOFF

    module = load_module(ckpt)
    c = module.config
    omega = module.omega.numpy().astype(np.float64)
    collate = Collate(module.needs_triplets, float(c.get("threebody_cutoff", THREEBODY_CUTOFF)))
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    predicted, failed, rows = [], [], []
    for path, name in zip(files, _names(files), strict=True):
        try:
            s = read_structure(path)
            rec = graph_record(s, float(c.get("cutoff", CUTOFF)))
            rec["eps"] = np.zeros((omega.size, 2), dtype=np.float32)
            with torch.no_grad():
                eps, drude = module(collate([rec]))
        except Exception as err:  # one bad file never stops the others
            reason = str(err) if isinstance(err, StructureError) else f"{type(err).__name__}: {err}"
            failed.append({"file": path, "reason": reason})
            rows.append({"file": path, "name": "", "formula": "", "drude_eV": "", "error": reason})
            continue
        eps = eps[0].numpy().astype(np.float64)
        wd = float(drude[0])
        pred = {
            "file": path,
            "name": name,
            "formula": s.composition.reduced_formula,
            "n_atoms": len(s),
            "drude_eV": wd,
            "omega_eV": omega.tolist(),
            "eps_re": eps[:, 0].tolist(),
            "eps_im": eps[:, 1].tolist(),
            "reflectance": _reflectance(eps, wd, omega).tolist(),
            "model": c["model"],
            "width": c["width"],
            "checkpoint": str(ckpt),
            "run_key": c.get("run_key"),
        }
        _write(outdir, pred, plot)
        predicted.append({k: pred[k] for k in ("file", "name", "formula", "drude_eV")})
        rows.append({**predicted[-1], "error": ""})
    _write_table(outdir / "predictions.csv", rows)
    summary = {"checkpoint": str(ckpt), "predicted": predicted, "failed": failed}
    atomic_write_json(outdir / "summary.json", summary)
    return summary


def _reflectance(eps: np.ndarray, drude: float, omega: np.ndarray) -> np.ndarray:
    from lightning_modules.colour import reflectance

    return np.asarray(reflectance(eps[:, 0] + 1j * eps[:, 1], np.float64(drude), omega, gamma=GAMMA))


def _write_table(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["file", "name", "formula", "drude_eV", "error"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _write(outdir: Path, pred: dict, plot: bool) -> None:
    name = pred["name"]
    atomic_write_json(outdir / f"{name}.json", pred)
    lines = ["omega_eV,eps_re,eps_im,reflectance"]
    lines += [
        f"{w:.6g},{re_:.8g},{im:.8g},{r:.8g}"
        for w, re_, im, r in zip(pred["omega_eV"], pred["eps_re"], pred["eps_im"], pred["reflectance"], strict=True)
    ]
    atomic_write_text(outdir / f"{name}.csv", "\n".join(lines) + "\n")
    if plot:
        atomic_write_bytes(outdir / f"{name}.png", _figure(pred))


def _figure(pred: dict) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = np.asarray(pred["omega_eV"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    a.plot(w, pred["eps_re"], label="Re ε")
    a.plot(w, pred["eps_im"], label="Im ε")
    a.axhline(0, color="0.6", lw=0.6)
    a.set(xlabel="ħω (eV)", ylabel="interband ε(ω)", title=f"{pred['formula']}  ({pred['model']}, h={pred['width']})")
    a.legend()
    b.plot(w, pred["reflectance"], color="k")
    b.set(xlabel="ħω (eV)", ylabel=f"reflectance (with Drude term, γ = {GAMMA} eV)", ylim=(0, 1.02))
    b.set_title(f"ω_D = {pred['drude_eV']:.3f} eV")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
