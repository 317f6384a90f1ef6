"""The software and hardware that determine the numbers of a store build or a training run.

Recorded in a store's manifest (`build_store`) and as `env.*` tags of every MLflow run (`train`):
with the same CPU instruction set, thread count and library versions a CPU run repeats its numbers
bit for bit (docs/reproducibility.md). Versions are read from the installed distributions' metadata,
so nothing heavy is imported for them.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata

STORE_PACKAGES = ("numpy", "scipy", "pymatgen", "h5py")
TRAIN_PACKAGES = ("torch", "lightning", "torch_geometric", "torchmetrics", "numpy")
# instruction-set extensions that select different floating-point kernels (x86 and ARM names)
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "asimd", "sve")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    fields: dict[str, str] = {}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return fields
    for line in text.split("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu() -> dict[str, str]:
    """CPU model and the ISA extensions of ISA_FLAGS it has."""
    info = _cpuinfo()
    model = info.get("model name") or info.get("Model") or info.get("CPU part") or platform.processor()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    return {"cpu": model or platform.machine(), "cpu_isa": ",".join(f for f in ISA_FLAGS if f in flags) or "unknown"}


def versions(packages) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def environment(packages=STORE_PACKAGES) -> dict[str, str]:
    """Machine, CPU, Python and the versions of `packages`, as strings."""
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "os": platform.platform(terse=True),
        "cpu_count": str(os.cpu_count()),
        **cpu(),
        **versions(packages),
    }


def training_environment(gpu: bool) -> dict[str, str]:
    """`environment(TRAIN_PACKAGES)` plus torch's threads, its CPU kernel level and, on a GPU run, the
    device. CUDA is queried only when `gpu`: a CUDA call before a fork breaks the forked sweep workers."""
    import torch

    env = environment(TRAIN_PACKAGES)
    env.update(
        torch_threads=str(torch.get_num_threads()),
        torch_interop_threads=str(torch.get_num_interop_threads()),
        torch_cpu_capability=str(torch.backends.cpu.get_cpu_capability()),
        cuda=str(torch.version.cuda),
        cuda_device=torch.cuda.get_device_name() if gpu else "none",
    )
    return env
