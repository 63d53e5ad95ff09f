"""What this machine is, read without torch (a dry run's estimate line and every recorded
figure name the CPU): its model name and the vector-ISA flags that decide its speed."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_features() -> str:
    """The vector-ISA flags that decide CPU speed here (AVX2, AVX-512, native bf16, AMX)."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return " ".join(w for w in wanted if w in have) or "none of " + "/".join(wanted)
    except OSError:
        pass
    return "unknown"


__all__ = ["cpu_features", "cpu_model"]
