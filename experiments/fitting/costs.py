"""What one more material costs to compute, and where that figure comes from (`cost_source`).

- "flag": `--cost-per-material H` was given (it overrides the store: a user who passes it expects
  other machines or settings than the ones that made the data);
- "records": the store was imported from published records that carry their own timing: the mean
  over its materials of (parameters.conv_time + nscf_time) * ncores / 3600, kept by the importer in
  the manifest under `dft_core_hours` (mean, median, total, how many records were timed);
- "surrogate": the built-in surrogate's store states its measured generation time per material
  (`seconds_per_material`, anywhere in its manifest, wall seconds with `cost_workers` processes);
  core-hours = seconds x processes / 3600;
- null: none of these (or the store could not be found); `cost_note` says why.

The store of a sweep is `--data STORE`, else the `data` param its finished runs logged (train
records the resolved store path), the most common one where they differ.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

SECONDS_PER_HOUR = 3600.0


def _find_key(doc, key: str):
    """The first value of `key` in a nested mapping (depth first), else None."""
    if isinstance(doc, dict):
        if key in doc:
            return doc[key]
        for v in doc.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def _positive(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def material_cost(store: str | None, flag: float | None) -> dict:
    """{cost_per_material_core_hours, cost_source, cost_store, cost_note} (see the module docstring)."""
    out = {"cost_per_material_core_hours": None, "cost_source": None, "cost_store": store, "cost_note": None}
    if flag is not None:
        return {**out, "cost_per_material_core_hours": float(flag), "cost_source": "flag"}
    if store is None:
        return {**out, "cost_note": "no store known (give --data STORE or --cost-per-material)"}
    manifest = Path(store) / "manifest.json"
    try:
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:
        return {**out, "cost_note": f"{manifest}: unreadable ({type(err).__name__}); no DFT cost"}
    records = _positive((doc.get("dft_core_hours") or {}).get("per_material_mean"))
    if records is not None:
        timed = doc["dft_core_hours"]
        note = f"mean over {timed.get('n_timed')} of {timed.get('n_materials')} materials with timing"
        return {**out, "cost_per_material_core_hours": records, "cost_source": "records", "cost_note": note}
    seconds = _positive(_find_key(doc, "seconds_per_material"))
    if seconds is not None:  # wall seconds of a build with `cost_workers` processes: core-seconds scale with them
        workers = _positive(_find_key(doc, "cost_workers")) or 1
        note = f"surrogate generation: {seconds:.4g} s per material (wall) x {workers:g} process(es)"
        seconds *= workers
        return {
            **out,
            "cost_per_material_core_hours": seconds / SECONDS_PER_HOUR,
            "cost_source": "surrogate",
            "cost_note": note,
        }
    kind = doc.get("kind", "unknown")
    return {**out, "cost_note": f"store of kind {kind!r} states no cost per material (give --cost-per-material)"}


def mlflow_store(experiment: str, tracking_uri: str | None = None) -> str | None:
    """The `data` param of the experiment's FINISHED runs (the most common one), else None."""
    from experiments.stores import tracking

    client = tracking.client_for(tracking_uri or tracking.default_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    seen: Counter = Counter()
    token = None
    while exp is not None:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        for r in page:
            if r.info.status == "FINISHED" and "data" in r.data.params:
                seen[r.data.params["data"]] += 1
        token = page.token
        if not token:
            break
    return seen.most_common(1)[0][0] if seen else None
