"""Image quality numbers: PSNR and SSIM (Gaussian window σ 1.5, K1 0.01, K2 0.03), over the whole
image or over a region (the hole). Images are float arrays (H, W[, C]) in 0…255."""

from __future__ import annotations

import cv2
import numpy as np

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    diff = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2
    if region is not None:
        diff = diff[region]
    mse = float(diff.mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM (averaged over channels), Gaussian-weighted 11×11 windows, σ = 1.5."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / ((mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2))
    return value.mean(axis=2) if value.ndim == 3 else value


def ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> float:
    values = ssim_map(a, b)
    return float(values[region].mean() if region is not None else values.mean())
