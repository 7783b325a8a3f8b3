"""Latency harness, memory, metrics (PSNR/SSIM) and tiling."""
