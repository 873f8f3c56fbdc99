"""How much training a compression gets: the --effort levels and the default batch per device.
Kept free of torch so the CLIs can build their --help without importing it."""
import math

# --effort: training steps for a set of up to SIZE_REFERENCE texels. A CPU step (the fused step
# and the texel draw) takes about 5-6 ms on one thread with bf16 in hardware, 8-9 ms in float32 on
# an AVX2 CPU, so "default" is about 2.5-4.5 minutes for a 1K 9-channel set on one core
# (bench/results/training.md, bench/choices.md).
EFFORTS = {"fast": 8000, "default": 30000, "max": 160000}
DEFAULT_EFFORT = "default"
# A step trains the same number of texels whatever the set's size, so a larger set gets more
# steps: in proportion to the square root of its texel count (2048x2048: twice), at most
# SIZE_SCALE_MAX times (bench/choices.md).
SIZE_REFERENCE = 1024 * 1024
SIZE_SCALE_MAX = 4.0

# Texels a step when the batch is left to the device: a CPU step is bound by memory latency and
# 4096 trained best per second there (bench/choices.md); a GPU wants RTXNTC-sized batches.
CPU_BATCH, CUDA_BATCH = 4096, 65536


def effort_steps(effort: str, width: int, height: int) -> int:
    """--effort's training steps for a width x height set (a multiple of 100)."""
    scale = min(SIZE_SCALE_MAX, max(1.0, math.sqrt(width * height / SIZE_REFERENCE)))
    return int(round(EFFORTS[effort] * scale / 100)) * 100


def budget_text(steps: int | None, effort: str | None) -> str:
    """A training budget as reports name it: --steps N, or --effort's (scaled per set)."""
    if steps:
        return f"--steps {steps:,}"
    return f"--effort {effort or DEFAULT_EFFORT} (steps by each set's size)"


def effort_help() -> str:
    """What --effort means, for every CLI's --help."""
    levels = ", ".join(f"{k} = {v:,}" for k, v in EFFORTS.items())
    return (f"training time for quality: {levels} steps for a set of up to 1024x1024 texels, "
            f"more for larger sets in proportion to the square root of their texel count "
            f"(2048x2048: twice), at most {SIZE_SCALE_MAX:g}x")
