"""The machine a benchmark table was measured on, recorded with the table."""

import os
import platform

# vector and matrix units that decide float32/bfloat16 speed on a CPU
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def machine_info():
    """Platform, CPU model, which of `CPU_FLAGS` it has (Linux `/proc/cpuinfo`), cores, Python."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {"platform": platform.platform(), "cpu": model, "cpus": os.cpu_count(),
            "cpu_flags": [flag for flag in CPU_FLAGS if flag in flags],
            "python": platform.python_version()}
