"""Device choice and mixed precision, in one place so every entry point behaves alike."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from inr.errors import InrError


def select_device(name: str | None = "auto") -> torch.device:
    """Pick cuda > mps > cpu for "auto"; an explicit name is checked, not trusted."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise InrError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InrError(f"device '{name}' requested but CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InrError(f"device '{name}' requested but MPS is not available on this machine")
    return dev


def cpu_has_bf16() -> bool:
    """Whether oneDNN can run bf16 convolutions and matmuls natively (AVX512-BF16 or AMX);
    without them bf16 is emulated and slower than fp32."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


@dataclass(frozen=True)
class SpeedPlan:
    """How one fit runs; none of it changes the parameters' layout or what a file holds."""

    amp: bool  # autocast for the forward pass; master weights and optimizer stay fp32
    channels_last: bool  # NHWC activations and conv weights (oneDNN / tensor cores prefer it)
    fused_adam: bool  # one fused Adam kernel instead of a Python loop over parameters
    compile: bool  # torch.compile (inductor) of the model's forward
    input_cache: bool = False  # precompute what the model does to its fixed inputs (hash-grid lookups)
    amp_dtype: str = "bfloat16"  # "float16" only on a GPU without bf16; the trainer then scales the loss

    @property
    def loss_scaling(self) -> bool:
        """fp16's 5-bit exponent flushes small gradients to zero: scale the loss (GradScaler)."""
        return self.amp and self.amp_dtype == "float16"


def amp_dtype(device: torch.device) -> str:
    """bf16 wherever the hardware has it (CPUs through oneDNN, CUDA from Ampere on); fp16 on older
    GPUs (Volta, Turing), where bf16 autocast would be emulated, slower than fp32."""
    if device.type == "cuda" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported(including_emulation=False):
        return "float16"
    return "bfloat16"


def speed_plan(
    device: torch.device,
    convolutional: bool,
    bf16_safe: bool,
    amp: bool | None = None,
    channels_last: bool | None = None,
    fused_adam: bool | None = None,
    compile: bool = False,
    input_cache: bool | None = None,
) -> SpeedPlan:
    """Resolve each `None` to this device's default for this model.

    Defaults are on only where a measurement (bench/bench_speed.py, and a fit to the same
    epoch with bf16 on vs off) showed a gain at equal quality. bf16 needs a family that
    declares it safe (`bf16_safe = True` on the model class: NeRV, NeRV++ and the
    Fourier-feature MLP, same PSNR at ~2x per step on CPU); SIREN lost 0.8 dB on CPU and 2.8 dB
    on an H200 (w0 = 30 amplifies bf16's 3-digit rounding), Poly-INR 0.1 dB, HNeRV 0.04 / 0.52
    / 2.90 dB at 40 epochs over three seeds (bench_video's `amp` variant), and the hash grid
    gains ~10 % a step from it (its time is in gathers). On CPU it also needs native bf16.
    On CUDA bf16 and channels-last stay off: at the 0.15M sizes this codec fits, an H200
    runs them slower (bench/results/gpu_h200_speed_015M_s26.json: NeRV x0.85 / x0.94,
    NeRV++ x0.80 / x0.90; channels-last HNeRV x1.12 alone), the steps being launch-bound;
    larger models may gain, so each can be forced on. Fused Adam pays on both (x1.06-1.15
    on the H200's conv families). MPS gets none of it (autocast there is unreliable). The
    input cache is plain tensors: on for every device (a family with nothing to precompute
    ignores it).
    """
    kind = device.type
    if amp is None:
        amp = bf16_safe and kind == "cpu" and cpu_has_bf16()
    # Memory format only means something for convolutions.
    channels_last = convolutional and (kind == "cpu" if channels_last is None else channels_last)
    if fused_adam is None:
        fused_adam = kind in ("cuda", "cpu")
    return SpeedPlan(
        amp=bool(amp), channels_last=bool(channels_last), fused_adam=bool(fused_adam), compile=bool(compile),
        input_cache=True if input_cache is None else bool(input_cache), amp_dtype=amp_dtype(device) if amp else "bfloat16",
    )


def autocast(device: torch.device, enabled: bool = True, dtype: str = "bfloat16") -> contextlib.AbstractContextManager:
    """Autocast (bf16 unless told fp16) on CUDA and CPU when enabled; a no-op elsewhere (MPS is unreliable)."""
    if enabled and device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock timings measure the work, not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily cap intra-op threads (worker pools must not oversubscribe the cores)."""
    if not n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
