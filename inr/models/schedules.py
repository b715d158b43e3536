"""Learning-rate schedules of every family, in one table: `paper` as the family's paper (its
official code, where public) trains it, `fast` as measured best for short CPU budgets.

`inr fit/encode --schedule paper` reproduces the papers; the default `fast` comes from
bench/bench_schedule.py (README, "Schedules"): each family fitted for the same number of
steps under a few candidate schedules, on the bundled Bunny clip (video families) and image
(coordinate families), the best final PSNR kept.
"""
from __future__ import annotations

from inr.models.registry import Schedule

PAPER: dict[str, Schedule] = {
    # SIREN (Sitzmann et al. 2020): Adam at 1e-4, constant.
    "siren": Schedule(warmup=0.0, decay="constant"),
    # Poly-INR (Singh et al. 2023): no reference code; a constant rate, as for SIREN.
    "poly": Schedule(warmup=0.0, decay="constant"),
    # Fourier features (Tancik et al. 2020), official notebook: Adam at 1e-3, constant.
    "ffn": Schedule(warmup=0.0, decay="constant"),
    # Instant-NGP image fitting (tiny-cuda-nn's sample config): Adam 1e-2, betas (0.9, 0.99),
    # eps 1e-15, constant until step 10 000 (its decay starts later than our budgets reach).
    "hashgrid": Schedule(warmup=0.0, decay="constant"),
    # NeRV (official code): 5e-4, Adam beta1 0.5, warm-up over 20 % of the epochs from 0.1x,
    # then cosine to 0.
    "nerv": Schedule(warmup=0.2, start=0.1, lr=5e-4, betas=(0.5, 0.999)),
    # HNeRV (official code, `cosine_0.1_1_0.1`): 1e-3, warm-up over 10 % from 0.1x, cosine.
    "hnerv": Schedule(warmup=0.1, start=0.1),
    # NeRV++ is built on HNeRV's training code and keeps its schedule.
    "nervpp": Schedule(warmup=0.1, start=0.1),
    # C3 / Cool-chic: 1e-2, cosine decay from the first step.
    "grid": Schedule(warmup=0.0),
}

FAST: dict[str, Schedule] = {name: Schedule() for name in PAPER}
