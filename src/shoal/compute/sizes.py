"""What one node of an Azure VM size offers: vCPUs, memory and GPUs, for backends that place
runners on nodes of a cluster (``ray``). A compute's ``size`` is looked up case-insensitively; a
size not in the table requests one CPU and nothing else (Azure knows more sizes than this list).

The figures are Azure's published ones for each size (``az vm list-sizes``): memory in GiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GIB = 1024**3


@dataclass(frozen=True)
class NodeResources:
    """One node's worth of a VM size. ``known`` is False for a size missing from the table."""

    size: str
    cpus: float
    memory_gib: float = 0.0
    gpus: int = 0
    known: bool = True

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)

    def ray_bundle(self) -> dict[str, float]:
        """One node of this size as Ray resources (an actor's ask, a placement group's bundle, an
        autoscaler request); no zero entries: Ray refuses them in bundles."""
        bundle: dict[str, float] = {"CPU": float(self.cpus)}
        if self.gpus:
            bundle["GPU"] = float(self.gpus)
        if self.memory_gib:
            bundle["memory"] = float(self.memory_bytes)
        return bundle

    def offered_by(self, ray_node: dict[str, Any]) -> bool:
        """Whether a Ray node (an entry of ``ray.nodes()``) has this much in all."""
        total = ray_node.get("Resources") or {}
        return (
            total.get("CPU", 0) >= self.cpus
            and total.get("GPU", 0) >= self.gpus
            and total.get("memory", 0) >= self.memory_bytes
        )

    def describe(self) -> str:
        """``4 CPUs and 14 GiB`` (``, 1 GPU`` where it has one)."""
        cpus = f"{self.cpus:g} CPU" + ("" if self.cpus == 1 else "s")
        parts = [cpus] + ([f"{self.memory_gib:g} GiB"] if self.memory_gib else [])
        if self.gpus:
            parts.append(f"{self.gpus} GPU" + ("" if self.gpus == 1 else "s"))
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# name -> (vCPUs, memory GiB, GPUs)
_SIZES: dict[str, tuple[int, float, int]] = {
    # General purpose
    "Standard_A1_v2": (1, 2, 0),
    "Standard_A2_v2": (2, 4, 0),
    "Standard_A4_v2": (4, 8, 0),
    "Standard_A8_v2": (8, 16, 0),
    "Standard_D1_v2": (1, 3.5, 0),
    "Standard_D2_v2": (2, 7, 0),
    "Standard_D3_v2": (4, 14, 0),
    "Standard_D4_v2": (8, 28, 0),
    "Standard_D5_v2": (16, 56, 0),
    "Standard_DS1_v2": (1, 3.5, 0),
    "Standard_DS2_v2": (2, 7, 0),
    "Standard_DS3_v2": (4, 14, 0),
    "Standard_DS4_v2": (8, 28, 0),
    "Standard_DS5_v2": (16, 56, 0),
    "Standard_D2_v3": (2, 8, 0),
    "Standard_D4_v3": (4, 16, 0),
    "Standard_D8_v3": (8, 32, 0),
    "Standard_D16_v3": (16, 64, 0),
    "Standard_D32_v3": (32, 128, 0),
    "Standard_D2s_v3": (2, 8, 0),
    "Standard_D4s_v3": (4, 16, 0),
    "Standard_D8s_v3": (8, 32, 0),
    "Standard_D16s_v3": (16, 64, 0),
    "Standard_D32s_v3": (32, 128, 0),
    "Standard_D2as_v4": (2, 8, 0),
    "Standard_D4as_v4": (4, 16, 0),
    "Standard_D8as_v4": (8, 32, 0),
    "Standard_D2ds_v4": (2, 8, 0),
    "Standard_D4ds_v4": (4, 16, 0),
    "Standard_D2s_v5": (2, 8, 0),
    "Standard_D4s_v5": (4, 16, 0),
    "Standard_D8s_v5": (8, 32, 0),
    # Memory optimized
    "Standard_DS11_v2": (2, 14, 0),
    "Standard_DS12_v2": (4, 28, 0),
    "Standard_DS13_v2": (8, 56, 0),
    "Standard_DS14_v2": (16, 112, 0),
    "Standard_D11_v2": (2, 14, 0),
    "Standard_D12_v2": (4, 28, 0),
    "Standard_D13_v2": (8, 56, 0),
    "Standard_D14_v2": (16, 112, 0),
    "Standard_E2s_v3": (2, 16, 0),
    "Standard_E4s_v3": (4, 32, 0),
    "Standard_E8s_v3": (8, 64, 0),
    "Standard_E16s_v3": (16, 128, 0),
    "Standard_E32s_v3": (32, 256, 0),
    # Compute optimized
    "Standard_F1s": (1, 2, 0),
    "Standard_F2s": (2, 4, 0),
    "Standard_F4s": (4, 8, 0),
    "Standard_F2s_v2": (2, 4, 0),
    "Standard_F4s_v2": (4, 8, 0),
    "Standard_F8s_v2": (8, 16, 0),
    "Standard_F16s_v2": (16, 32, 0),
    "Standard_F32s_v2": (32, 64, 0),
    "Standard_F72s_v2": (72, 144, 0),
    # GPU
    "Standard_NC6": (6, 56, 1),
    "Standard_NC12": (12, 112, 2),
    "Standard_NC24": (24, 224, 4),
    "Standard_NC6s_v3": (6, 112, 1),
    "Standard_NC12s_v3": (12, 224, 2),
    "Standard_NC24s_v3": (24, 448, 4),
    "Standard_NC4as_T4_v3": (4, 28, 1),
    "Standard_NC8as_T4_v3": (8, 56, 1),
    "Standard_NC16as_T4_v3": (16, 110, 1),
    "Standard_NC64as_T4_v3": (64, 440, 4),
    "Standard_NC24ads_A100_v4": (24, 220, 1),
    "Standard_NC48ads_A100_v4": (48, 440, 2),
    "Standard_NC96ads_A100_v4": (96, 880, 4),
    "Standard_ND40rs_v2": (40, 672, 8),
    "Standard_ND96asr_v4": (96, 900, 8),
    "Standard_ND96amsr_A100_v4": (96, 1900, 8),
    "Standard_NV6": (6, 56, 1),
    "Standard_NV12s_v3": (12, 112, 1),
}
_BY_LOWER = {name.lower(): (name, figures) for name, figures in _SIZES.items()}


def known_sizes() -> tuple[str, ...]:
    return tuple(_SIZES)


def resources_for(size: str | None) -> NodeResources:
    """One node of ``size``: the table's figures, or one CPU for a size it does not list."""
    found = _BY_LOWER.get((size or "").strip().lower())
    if found is None:
        return NodeResources(size=size or "", cpus=1, known=False)
    name, (cpus, memory, gpus) = found
    return NodeResources(size=name, cpus=cpus, memory_gib=memory, gpus=gpus)
