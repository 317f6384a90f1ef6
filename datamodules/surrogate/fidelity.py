"""Two fidelities of the surrogate on the same structures, and the labelling cost a store records.

- full: the default settings (0.15 eV broadening and smearing; 0.08 / 0.07 Å^-1 k-spacing).
- cheap: the same Hamiltonian (s, p and d orbitals, so the same band structure and the same
  structures) on a k-grid twice as coarse per axis (8x fewer k-points) with twice the broadening
  and smearing (0.3 eV). The wider Gaussians are what a coarser grid needs: the band energies
  then move by about one broadening between neighbouring k-points, so the spectrum stays smooth
  instead of breaking up into k-point spikes. Dropping d orbitals instead would change the physics
  of every transition metal, not just its resolution, and the cheap labels would not be a lower
  resolution of the full ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from ..atomic import atomic_write_json
from .optics import OpticsSettings

FIDELITIES: dict[str, OpticsSettings] = {
    "full": OpticsSettings(),
    "cheap": OpticsSettings(broadening=0.3, smearing=0.3, k_spacing=0.16, k_spacing_sp=0.14),
}


def settings_for(fidelity: str = "full", **overrides) -> OpticsSettings:
    """The optics settings of a fidelity; keyword overrides (None: keep) replace single fields."""
    if fidelity not in FIDELITIES:
        raise ValueError(f"--fidelity: unknown fidelity {fidelity!r} (choose from {', '.join(FIDELITIES)})")
    return replace(FIDELITIES[fidelity], **{k: v for k, v in overrides.items() if v is not None})


def fidelity_of(settings: OpticsSettings) -> str:
    """The name of the fidelity whose settings these are, or 'custom'."""
    return next((name for name, s in FIDELITIES.items() if s == settings), "custom")


def timed_build(build, out, workers) -> dict:
    """Run `build()` (a store build returning its manifest) and record its cost in the manifest.

    `seconds_per_material` is wall-clock seconds per record of this build on this machine with
    `workers` processes; a store that was already complete keeps the figure of its first build.
    """
    start = time.perf_counter()
    manifest = build()
    if "seconds_per_material" in manifest or not manifest.get("n_records"):
        return manifest
    manifest["seconds_per_material"] = round((time.perf_counter() - start) / manifest["n_records"], 5)
    manifest["cost_workers"] = workers
    path = Path(out) / "manifest.json"
    if path.exists():
        on_disk = json.loads(path.read_text())
        on_disk.update(seconds_per_material=manifest["seconds_per_material"], cost_workers=workers)
        atomic_write_json(path, on_disk)
    return manifest
