"""Frame-wise video INRs: NeRV, NeRV++ and HNeRV, sharing one upsampling decoder.

NeRV (Chen et al. 2021): frame index t -> positional encoding (b = 1.25, 80 levels) -> stem
-> base feature map -> [conv k x k -> PixelShuffle(s) -> GELU] per stage -> 3x3 RGB head.
The layout follows HNeRV's re-implementation of the NeRV baseline (kernel 3 everywhere,
channel reduction 2, lower width 12) so the two are compared as in the HNeRV paper.

HNeRV (Chen et al. 2023): a ConvNeXt encoder maps each frame to a tiny embedding (16 x 2 x 4
for 1280x640 with strides 5,4,4,2,2); the decoder grows kernel sizes with depth
(min(1 + 2i, 5)) and reduces channels by only 1.2 per stage, moving parameters to the
high-resolution layers. The embeddings are stored with the decoder; the encoder is a
fit-time tool and is not part of the representation.

NeRV++ (Ghorbel et al. 2024): the NeRV decoder with a separable-conv residual block
(depthwise k x k -> GELU -> pointwise 1x1, added back) after each upsampling block and a
bilinear-interpolation skip path (bilinear x s, 1x1 conv to the new width) added to it.
"""
from __future__ import annotations

import contextlib

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from inr.encodings import PositionalEncoding
from inr.encodings.fourier import BANDS
from inr.encodings.fourier import float64_device
from inr.errors import InrError
from inr.models.geometry import Geometry, derive_geometry
from inr.models.registry import ModelSpec, OptimDefaults, register
from inr.models.representation import FrameRepresentation
from inr.models.schedules import FAST, PAPER


def stage_widths(fc_dim: int, n_stages: int, reduce: float, lower_width: int) -> list[int]:
    widths, ngf = [], fc_dim
    for _ in range(n_stages):
        ngf = int(max(round(ngf / reduce), lower_width))
        widths.append(ngf)
    return widths


def stage_kernels(ks: tuple[int, int], n_stages: int) -> list[int]:
    return [min(ks[0] + 2 * i, ks[1]) for i in range(n_stages)]


class UpBlock(nn.Module):
    """conv k x k (c_in -> c_out * s^2) -> PixelShuffle(s) -> GELU."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(c_in, c_out * stride * stride, kernel, 1, (kernel - 1) // 2)
        self.shuffle = nn.PixelShuffle(stride) if stride > 1 else nn.Identity()
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if s == 1 or not x.is_contiguous(memory_format=torch.channels_last):
            return self.act(self.shuffle(self.conv(x)))
        # Channels-last (the CPU speed plan): PixelShuffle reads every value s^2 channels apart,
        # and it and its backward were 15 % of a NeRV step. Run the conv with its output channels
        # sub-pixel-major instead (its weight rows permuted: the same parameters, the same
        # outputs), and the shuffle becomes a copy of whole runs of C channels.
        w, b = self.conv.weight, self.conv.bias
        c = w.shape[0] // (s * s)
        w = w.view(c, s * s, *w.shape[1:]).transpose(0, 1).reshape(w.shape).contiguous(memory_format=torch.channels_last)
        b = b.view(c, s * s).t().reshape(-1)
        y = F.conv2d(x, w, b, self.conv.stride, self.conv.padding)
        n, _, h, wd = y.shape
        y = y.permute(0, 2, 3, 1).reshape(n, h, wd, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h * s, wd * s, c)
        return self.act(y.permute(0, 3, 1, 2))


def pointwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv; on a channels-last input (the CPU speed plan, or any one-channel input,
    whose two layouts are the same bytes) one matmul over its (N, H, W, C) view. oneDNN's
    1x1 kernel from one channel took 4.0 ms forward and backward at 2 x 160x320 (NeRV++'s
    last stage at 0.15M), the matmul 0.61 ms (bench/results/nervpp_pointwise_s28.log)."""
    if not x.is_contiguous(memory_format=torch.channels_last):
        return conv(x)
    y = F.linear(x.permute(0, 2, 3, 1), conv.weight.view(conv.out_channels, conv.in_channels), conv.bias)
    return y.permute(0, 3, 1, 2)


class SeparableResBlock(nn.Module):
    """x + pointwise(GELU(depthwise(x))): NeRV++'s cheap extra capacity at full resolution."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, kernel, 1, kernel // 2, groups=channels)
        self.pw = nn.Conv2d(channels, channels, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + pointwise(self.pw, self.act(self.dw(x)))


class NeRVPPStage(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int):
        super().__init__()
        self.pre = SeparableResBlock(c_in, 3)
        self.up = UpBlock(c_in, c_out, stride, kernel)
        self.skip = nn.Conv2d(c_in, c_out, 1)
        self.post = SeparableResBlock(c_out, 3)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        # The 1x1 skip conv and the bilinear upsampling are both linear and act on different
        # axes (interpolation weights sum to one, so the bias passes through): convolving first
        # runs the conv on s^2 fewer pixels and interpolates c_out channels, not c_in. Same
        # function up to float rounding; ~8 % of a NeRV++ training step.
        skip = pointwise(self.skip, x)
        if self.stride != 1:
            skip = F.interpolate(skip, scale_factor=self.stride, mode="bilinear", align_corners=False)
        return self.post(self.up(x) + skip)


class Decoder(nn.Module):
    """1x1 stem (in_ch -> fc_dim * fh * fw, reshaped to a base map) + upsampling stages + head."""

    def __init__(
        self,
        in_ch: int,
        fc_dim: int,
        fc_hw: tuple[int, int],
        strides: tuple[int, ...],
        ks: tuple[int, int],
        reduce: float,
        lower_width: int,
        stem_hidden: int = 0,
        plus_plus: bool = False,
    ):
        super().__init__()
        self.fc_dim, self.fc_hw = fc_dim, fc_hw
        out_f = fc_dim * fc_hw[0] * fc_hw[1]
        if stem_hidden:
            self.stem = nn.Sequential(nn.Conv2d(in_ch, stem_hidden, 1), nn.GELU(), nn.Conv2d(stem_hidden, out_f, 1), nn.GELU())
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_ch, out_f, 1), nn.GELU())
        widths = stage_widths(fc_dim, len(strides), reduce, lower_width)
        kernels = stage_kernels(ks, len(strides))
        stages, c_in = [], fc_dim
        for c_out, s, k in zip(widths, strides, kernels):
            stages.append(NeRVPPStage(c_in, c_out, s, k) if plus_plus else UpBlock(c_in, c_out, s, k))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(c_in, 3, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # The stem runs in fp32 even under bf16 autocast: it is the one layer that sees NeRV's
        # exact positional encoding (3 bf16 digits would undo it), and on a 1x1 map it is cheap.
        # (The decoder's header checks run this on the meta device, which has no autocast.)
        fp32 = torch.autocast(z.device.type, enabled=False) if z.device.type != "meta" else contextlib.nullcontext()
        with fp32:
            x = self.stem(z.float())
        n, _, h, w = x.shape
        fh, fw = self.fc_hw
        # (n, C*fh*fw, h, w) -> (n, C, fh*h, fw*w): the stem's output channels become the base map.
        x = x.view(n, -1, fh, fw, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, -1, fh * h, fw * w)
        for stage in self.stages:
            x = stage(x)
        return torch.tanh(self.head(x)) * 0.5 + 0.5


def _geometry(cfg) -> Geometry:
    return Geometry(cfg.height, cfg.width, cfg.pad_height, cfg.pad_width, tuple(cfg.strides))


def _crop(x: torch.Tensor, cfg) -> torch.Tensor:
    return x[..., : cfg.height, : cfg.width]


def _pad(frames: torch.Tensor, cfg) -> torch.Tensor:
    dh, dw = cfg.pad_height - frames.shape[-2], cfg.pad_width - frames.shape[-1]
    return F.pad(frames, (0, dw, 0, dh), mode="replicate") if dh or dw else frames


def _adapt_video(cfg, signal):
    if signal.kind != "video":
        from inr.errors import InrError

        raise InrError("NeRV-family models need a video input")
    t, h, w, _ = signal.data.shape
    g = derive_geometry(h, w, cfg.min_base, cfg.max_base)
    return dataclasses.replace(cfg, height=h, width=w, frames=t, pad_height=g.pad_height, pad_width=g.pad_width, strides=g.strides)


def _adapt_nerv(cfg, signal):
    """New NeRV/NeRV++ fits use the official code's band frequencies (see NeRVConfig.pe_bands)."""
    return dataclasses.replace(_adapt_video(cfg, signal), pe_bands="float32")


# Ranges a decoder accepts for these config fields (`inr.export.schema`); counts of layers and
# blocks are tight so that building even a rejected model stays fast; widths are loose, since
# the meta-device parameter count bounds them.
_FRAME_LIMITS = {
    "height": (1, 16384), "width": (1, 16384), "frames": (1, 100_000), "pad_height": (1, 16384), "pad_width": (1, 16384),
    "strides": (1, 8), "fc_dim": (1, 1 << 24), "ks": (1, 15), "reduce": (0.25, 16.0), "lower_width": (1, 1 << 24),
    "min_base": (1, 256), "max_base": (1, 256),
}


# --------------------------------------------------------------------------- NeRV / NeRV++
@dataclass
class NeRVConfig:
    """Defaults: HNeRV's NeRV baseline (pe 1.25_80, ks 0_3_3, reduce 2, lower width 12), Adam
    lr 1e-3 with warm-up + cosine, L2 loss, batch 2 (HNeRV README's Bunny command)."""

    height: int = 640
    width: int = 1280
    frames: int = 132
    pad_height: int = 640
    pad_width: int = 1280
    strides: tuple[int, ...] = (5, 4, 2, 2)
    fc_dim: int = 64
    pe_base: float = 1.25
    pe_levels: int = 80
    # "float32": the official code's band frequencies (inr.encodings.fourier.float32_bands), set
    # for every new fit by _adapt_video; "exact" (b^k) is what files written before them used.
    pe_bands: str = "exact"
    stem_hidden: int = 0
    ks: tuple[int, int] = (3, 3)
    reduce: float = 2.0
    lower_width: int = 12
    min_base: int = 8
    max_base: int = 16

    LIMITS = {**_FRAME_LIMITS, "pe_base": (1.0, 16.0), "pe_levels": (1, 256), "pe_bands": BANDS, "stem_hidden": (0, 1 << 24)}


class NeRV(FrameRepresentation):
    plus_plus = False
    bf16_safe = True  # bf16 autocast by default (inr.device.speed_plan): ~2x per step on CPU

    def __init__(self, cfg: NeRVConfig):
        super().__init__()
        self.config = cfg
        geo = _geometry(cfg)
        self.pe = PositionalEncoding(1, cfg.pe_levels, cfg.pe_base, bands=cfg.pe_bands)
        self.decoder = Decoder(
            self.pe.out_dim, cfg.fc_dim, geo.base, tuple(cfg.strides), tuple(cfg.ks), cfg.reduce, cfg.lower_width,
            cfg.stem_hidden, plus_plus=self.plus_plus,
        )

    def forward(self, idx: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        # HNeRV's normalisation idx / T, in float64 like the official code: the top PE bands
        # need every bit (see inr.encodings.fourier).
        t = idx.to(float64_device(idx.device), torch.float64)[:, None] / self.config.frames
        z = self.pe(t).to(idx.device)[:, :, None, None]
        return _crop(self.decoder(z), self.config)


class NeRVPlusPlus(NeRV):
    plus_plus = True


# --------------------------------------------------------------------------- HNeRV
@dataclass
class HNeRVConfig:
    """Defaults from the HNeRV README's Bunny command: enc/dec strides 5,4,4,2,2, enc_dim 64_16,
    ks 0_1_5, reduce 1.2, lower width 12, ConvNeXt encoder with 1 block per stage, L2 loss,
    Adam lr 1e-3, batch 2; embeddings quantised to 6 bits at export."""

    height: int = 640
    width: int = 1280
    frames: int = 132
    pad_height: int = 640
    pad_width: int = 1280
    strides: tuple[int, ...] = (5, 4, 4, 2, 2)
    fc_dim: int = 64
    enc_dim: int = 64
    embed_dim: int = 16
    enc_blocks: int = 1
    ks: tuple[int, int] = (1, 5)
    reduce: float = 1.2
    lower_width: int = 12
    min_base: int = 2
    max_base: int = 6  # keep embeddings small: pad awkward sizes rather than grow the base map

    LIMITS = {**_FRAME_LIMITS, "enc_dim": (1, 1 << 24), "embed_dim": (1, 1 << 24), "enc_blocks": (0, 8)}


class ChannelsFirstLayerNorm(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    """depthwise 7x7 -> LayerNorm -> 1x1 (4x) -> GELU -> 1x1 -> layer scale, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, 4 * dim)
        self.pw2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtEncoder(nn.Module):
    def __init__(self, strides: tuple[int, ...], dim: int, embed_dim: int, blocks: int):
        super().__init__()
        dims = [dim] * (len(strides) - 1) + [embed_dim]
        layers: list[nn.Module] = []
        c_in = 3
        for i, (s, d) in enumerate(zip(strides, dims)):
            if i == 0:
                layers += [nn.Conv2d(c_in, d, s, s), ChannelsFirstLayerNorm(d)]
            else:
                layers += [ChannelsFirstLayerNorm(c_in), nn.Conv2d(c_in, d, s, s)]
            layers += [ConvNeXtBlock(d) for _ in range(blocks)]
            c_in = d
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# Pixels of frames embedded at once after a fit: the encoder's widest stage holds 4 x enc_dim
# channels at 1/16 or 1/25 of the pixels (a first stride of 4 or 5), so eight 1080p frames at
# once (the fixed batch before) made a 12-frame 1080p encode peak at 4,305 MiB; at two frames
# a batch its peak is the training step's (3,154 MiB).
EMBED_PIXELS = 1 << 22
HNERV_EXTRA_STEP_BYTES = 256  # a pixel, over the generic 512 (see HNeRV.fit_memory)


class HNeRV(FrameRepresentation):
    fit_only = ("encoder.",)  # the encoder only exists to fit; files carry the embeddings
    # Not bf16 on CPU by default: 40-epoch fits lost 0.04 / 0.52 / 2.90 dB with it over three seeds
    # (bench/results/video_hnerv_amp_s25.json; NeRV/NeRV++ lost 0.00).
    bf16_safe = False

    def __init__(self, cfg: HNeRVConfig, fit_modules: bool = True):
        """`fit_modules=False` (the decoder) leaves out the encoder, which files never carry,
        and holds a place for the embeddings, which they do."""
        super().__init__()
        self.config = cfg
        self.frozen = False
        geo = _geometry(cfg)
        self.encoder = ConvNeXtEncoder(tuple(cfg.strides), cfg.enc_dim, cfg.embed_dim, cfg.enc_blocks) if fit_modules else None
        self.decoder = Decoder(cfg.embed_dim, cfg.fc_dim, (1, 1), tuple(cfg.strides), tuple(cfg.ks), cfg.reduce, cfg.lower_width)
        self.embed_shape = (cfg.embed_dim, *geo.base)
        # (T, C, h, w) once embedded or loaded; a decoder's model starts with a place for them.
        # A buffer so that it moves with the model; not persistent: checkpoints and files store
        # it through the representation interface (checkpoint_tensors, stored_tensors).
        self.register_buffer("embeddings", None if fit_modules else torch.zeros(cfg.frames, *self.embed_shape), persistent=False)

    @classmethod
    def fit_memory(cls, frames: int, height: int, width: int, params: int) -> int:
        """The generic estimate plus the encoder's activations: its first ConvNeXt stage runs
        4 x enc_dim channels at 1/16 of the pixels and keeps them all for the backward, in
        float32 (HNeRV is not bf16 on CPU). A training step on 2 frames of 1080p held 2.1 GiB
        over the signal (NeRV's, at the same size: 0.4 GiB); a 12-frame 1080p GOP encode peaked
        at 3.08 GiB (3,154 MiB) where the generic estimate said 2.89."""
        return super().fit_memory(frames, height, width, params) + height * width * HNERV_EXTRA_STEP_BYTES

    @classmethod
    def for_decoding(cls, cfg: HNeRVConfig) -> "HNeRV":
        return cls(cfg, fit_modules=False)

    def stored_param_count(self) -> int:
        return sum(p.numel() for p in self.decoder.parameters()) + self.config.frames * math.prod(self.embed_shape)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder(_pad(frames, self.config))

    @torch.no_grad()
    def prepare_decoding(self, signal, device: torch.device, pixels: int = EMBED_PIXELS) -> None:
        """Embed every frame once; decoding then runs the decoder alone, as a player would.
        A batch holds `pixels` pixels' worth of frames (at least one)."""
        self.frozen = False
        self.eval()
        frames = signal.data.permute(0, 3, 1, 2).to(device)
        batch = max(1, pixels // max(1, frames.shape[-2] * frames.shape[-1]))
        self.embeddings = torch.cat([self.encode(frames[i : i + batch]) for i in range(0, frames.shape[0], batch)])

    def coded_buffers(self) -> dict[str, torch.Tensor]:
        return {} if self.embeddings is None else {"embeddings": self.embeddings}

    def set_buffer(self, name: str, value: torch.Tensor) -> None:
        """Decode from these embeddings from now on, in training too (quantization-aware
        fine-tuning trains the decoder against the embeddings the file will carry)."""
        if name != "embeddings":
            super().set_buffer(name, value)
        self.embeddings, self.frozen = value, True

    def load_checkpoint_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """A fit's cached embeddings: used to render, dropped when training resumes."""
        self.embeddings = tensors.get("embeddings")

    def train(self, mode: bool = True):
        if mode and not self.frozen:
            self.embeddings = None  # the encoder is changing again: cached embeddings go stale
        return super().train(mode)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return _crop(self.decoder(z), self.config)

    def forward(self, idx: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        if self.embeddings is not None and (self.frozen or not self.training):
            z = self.embeddings[idx].contiguous()  # one layout whatever a speed plan did to the buffer
        else:
            if frames is None:
                raise InrError("this HNeRV has no embeddings to decode from (they are made at the end of its fit)")
            z = self.encode(frames)
        return self.decode(z)


def _register(name: str, config_cls, model_cls, description: str, adapt=_adapt_video) -> None:
    register(
        ModelSpec(
            name=name,
            config_cls=config_cls,
            model_cls=model_cls,
            signals=("video",),
            description=description,
            optim=OptimDefaults(lr=1e-3, betas=(0.9, 0.999), fast=FAST[name], paper=PAPER[name]),
            adapt=adapt,
            width_field="fc_dim",
            fine_field="lower_width",
        )
    )


_register("nerv", NeRVConfig, NeRV, "NeRV: frame index -> positional encoding -> conv + PixelShuffle decoder", _adapt_nerv)
_register("nervpp", NeRVConfig, NeRVPlusPlus, "NeRV++: NeRV decoder + separable-conv residual blocks and bilinear skips", _adapt_nerv)
_register("hnerv", HNeRVConfig, HNeRV, "HNeRV: ConvNeXt-encoded per-frame embeddings + balanced NeRV decoder")
