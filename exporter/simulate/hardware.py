"""What NVML reports about a GPU beyond the MIG catalogue: compute capability, power, clocks, thermals, PCI ids.

The catalogue (``slicewise.catalogue``) holds names, memory, SMs and MIG profiles; this adds the board facts that
nvidia-smi and nvitop show, per architecture and form factor, from NVIDIA's product briefs (SXM boards).
"""

from __future__ import annotations

from dataclasses import dataclass

from slicewise.catalogue import GpuModel


@dataclass(frozen=True)
class Board:
    compute_capability: tuple[int, int]
    cores_per_sm: int  # CUDA cores per SM for that compute capability
    power_limit_w: int
    idle_power_w: int
    max_sm_clock_mhz: int
    max_memory_clock_mhz: int
    idle_sm_clock_mhz: int
    pcie_generation: int
    pcie_width: int
    memory_bus_width: int
    slowdown_temp_c: int
    shutdown_temp_c: int


_BOARDS = {
    "A30-24GB": Board((8, 0), 64, 165, 30, 1440, 1215, 210, 4, 16, 3072, 90, 95),
    "A100-40GB": Board((8, 0), 64, 400, 55, 1410, 1215, 210, 4, 16, 5120, 90, 95),
    "A100-80GB": Board((8, 0), 64, 400, 60, 1410, 1593, 210, 4, 16, 5120, 90, 95),
    "H100-80GB": Board((9, 0), 128, 700, 70, 1980, 2619, 345, 5, 16, 5120, 87, 92),
    "H200-141GB": Board((9, 0), 128, 700, 75, 1980, 3201, 345, 5, 16, 6144, 87, 92),
    # Added with the catalogue's newer models (issue 18): product-brief figures, PCIe boards at their own limits.
    "H100-PCIe-80GB": Board((9, 0), 128, 350, 50, 1755, 1593, 345, 5, 16, 5120, 87, 92),
    "H800-80GB": Board((9, 0), 128, 700, 70, 1980, 2619, 345, 5, 16, 5120, 87, 92),
    "H800-PCIe-80GB": Board((9, 0), 128, 350, 50, 1755, 1593, 345, 5, 16, 5120, 87, 92),
    "H100-NVL-94GB": Board((9, 0), 128, 400, 60, 1785, 2619, 345, 5, 16, 6144, 87, 92),
    "GH200-96GB": Board((9, 0), 128, 900, 90, 1980, 2619, 345, 5, 16, 6144, 87, 92),
    "H20-96GB": Board((9, 0), 128, 400, 60, 1980, 2619, 345, 5, 16, 6144, 87, 92),
    "GH200-144GB": Board((9, 0), 128, 900, 90, 1980, 3201, 345, 5, 16, 6144, 87, 92),
    "B200-180GB": Board((10, 0), 128, 1000, 140, 1965, 3996, 345, 5, 16, 8192, 87, 92),
    "GB200-186GB": Board((10, 0), 128, 1200, 150, 2062, 3996, 345, 6, 16, 8192, 87, 92),
    "B300-288GB": Board((10, 3), 128, 1100, 150, 2032, 3996, 345, 6, 16, 8192, 87, 92),
    "RTX-PRO-6000-96GB": Board((12, 0), 128, 600, 40, 2430, 14001, 210, 5, 16, 512, 90, 95),
}

# PCI bus numbers of the eight GPUs of an HGX baseboard, in NVML index order.
HGX_BUS_IDS = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)

# Driver-reserved framebuffer (nvmlMemory_v2_t.reserved) as a share of the total, as seen on R535+ drivers.
RESERVED_SHARE = 0.006


def board(model: GpuModel) -> Board:
    return _BOARDS[model.key]


def pci_bus_id(index: int) -> str:
    bus = HGX_BUS_IDS[index % len(HGX_BUS_IDS)] + 0x100 * (index // len(HGX_BUS_IDS))
    return f"00000000:{bus:02X}:00.0"
