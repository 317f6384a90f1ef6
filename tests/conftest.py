"""Session fixtures: real sample records from ../shared and records derived from them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("OPTISCALE_SAMPLES", REPO.parent / "shared" / "samples" / "optimetal"))

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# element substitutions that keep the records metallic and give distinct compositions
SUBSTITUTIONS = [
    {},
    {"Li": "Na"},
    {"Li": "K"},
    {"Sc": "Y"},
    {"Ti": "Zr"},
    {"Ti": "Hf"},
    {"Li": "Na", "Sc": "Y"},
    {"Zr": "Hf"},
    {"Nb": "Ta"},
    {"Nb": "V"},
    {"Zr": "Ti", "Ti": "Zr"},
    {"Ti": "V"},
    {"Zr": "Sc"},
]


@pytest.fixture(scope="session")
def samples_present() -> bool:
    """Whether the real sample records are on this machine (they are never committed)."""
    return SAMPLES.is_dir() and bool(list(SAMPLES.glob("*.json")))


@pytest.fixture(scope="session")
def samples_dir(samples_present) -> Path:
    if not samples_present:
        pytest.skip(f"real sample records not found at {SAMPLES} (../shared is absent)")
    return SAMPLES


@pytest.fixture(scope="session")
def sample_docs(samples_dir) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(samples_dir.glob("*.json"))}


@pytest.fixture(scope="session")
def sample_structures(sample_docs):
    from pymatgen.core import Structure

    return {k: Structure.from_dict(d["structure"]) for k, d in sample_docs.items()}


def derive(doc: dict, k: int, subst: dict, strain: float) -> dict:
    """A new record from a real one: species substituted, volume strained, new mat_id."""
    from pymatgen.core import Structure

    s = Structure.from_dict(doc["structure"])
    present = {e.symbol for e in s.composition.elements}
    mapping = {a: b for a, b in subst.items() if a in present}
    if mapping:
        s.replace_species(mapping)
    s.scale_lattice(s.volume * (1 + strain))
    new = json.loads(json.dumps(doc))
    new["structure"] = s.as_dict()
    new["data"]["mat_id"] = f"{doc['data']['mat_id']}-d{k:03d}"
    return new


def write_derived(docs: dict[str, dict], out: Path, n_per_sample: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths, k = [], 0
    rng = np.random.default_rng(0)
    for doc in docs.values():
        for j in range(n_per_sample):
            d = derive(doc, k, SUBSTITUTIONS[j % len(SUBSTITUTIONS)], float(rng.uniform(-0.03, 0.03)))
            p = out / f"{d['data']['mat_id']}.json"
            p.write_text(json.dumps(d))
            paths.append(p)
            k += 1
    return paths


@pytest.fixture(scope="session")
def surrogate_store(tmp_path_factory) -> Path:
    """48 crystals of the built-in surrogate on a 51-point grid: for tests that need graphs and
    labels but not DFT records, so they run where ../shared is absent."""
    from datamodules.surrogate.generate import generate

    out = tmp_path_factory.mktemp("surrogate") / "store"
    generate(n=48, seed=0, out=out, grid_points=51)
    return out


@pytest.fixture(scope="session")
def derived_dir(sample_docs, tmp_path_factory) -> Path:
    """40 derived records (20 per sample, 13 compositions each) for split and loader tests."""
    out = tmp_path_factory.mktemp("derived")
    write_derived(sample_docs, out, 20)
    return out


@pytest.fixture(scope="session")
def derived_store(derived_dir, tmp_path_factory) -> Path:
    from datamodules.importer import import_records

    out = tmp_path_factory.mktemp("stores") / "derived"
    import_records([str(derived_dir)], out, workers=1, chunk_size=16, progress=False)
    return out


@pytest.fixture(scope="session")
def derive_record():
    """The `derive` function, for tests that build their own records."""
    return derive
