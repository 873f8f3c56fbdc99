"""How much training a compression gets: the --effort levels and the default batch per device.
Kept free of torch so the CLIs can build their --help without importing it."""

# --effort: training steps. A CPU step (the fused step and the texel draw) takes about 6-7 ms on
# one thread, so "default" is about 4-5 minutes for a 1K 9-channel set on one core
# (bench/results/training.md).
EFFORTS = {"fast": 8000, "default": 40000, "max": 160000}
DEFAULT_EFFORT = "default"

# Texels a step when the batch is left to the device: a CPU step is bound by memory latency and
# 4096 trained best per second there (bench/choices.md); a GPU wants RTXNTC-sized batches.
CPU_BATCH, CUDA_BATCH = 4096, 65536
