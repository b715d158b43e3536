"""Speed knobs (bf16 autocast, channels-last, fused Adam) change how a fit runs, never what it
stores: same parameter layout, checkpoints that resume across settings, identical file format."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from inr import checkpoint as ckpt
from inr.device import cpu_has_bf16, speed_plan
from inr.export.codec import decode_model, encode_model
from inr.fit import FitConfig, Trainer, plan_for
from inr.models import get_spec
from inr.pipeline import FitOptions, build_model, fit_signal
from inr.signals import image_signal, video_signal

CPU = torch.device("cpu")
ON = {"amp": True, "channels_last": True, "fused_adam": True, "input_cache": True}
OFF = {"amp": False, "channels_last": False, "fused_adam": False, "input_cache": False}
TINY = {"nerv": {"fc_dim": 8}, "ffn": {"hidden": 32, "layers": 1, "num_features": 16}}


def _signal(name, tiny_clip, crop64):
    return video_signal(tiny_clip[:4, :32, :48]) if name == "nerv" else image_signal(crop64[:24, :24])


def _trainer(name, signal, speed: dict, steps: int = 20):
    spec = get_spec(name)
    cfg, model = build_model(spec, signal, None, TINY[name], seed=0)
    opts = FitOptions(model=name, overrides=TINY[name], batch_size=2 if name == "nerv" else None, fit=FitConfig(steps=steps, **speed))
    return spec, cfg, model, Trainer(model, model.make_task(signal, CPU, opts), opts.fit, spec.optim, CPU)


@pytest.mark.parametrize("name", ["nerv", "ffn"])
def test_bf16_path_is_finite_and_keeps_the_parameter_layout(name, tiny_clip, crop64):
    signal = _signal(name, tiny_clip, crop64)
    spec, cfg, fast_model, fast = _trainer(name, signal, ON)
    _, _, plain_model, plain = _trainer(name, signal, OFF)
    assert fast.speed.amp and not plain.speed.amp
    for _ in range(3):
        fast_loss, plain_loss = fast.step_once(), plain.step_once()
        assert torch.isfinite(torch.tensor(fast_loss))
        assert fast_loss == pytest.approx(plain_loss, rel=0.05)  # same batches, same start
    fast_state, plain_state = fast_model.state_dict(), plain_model.state_dict()
    assert {k: (v.shape, v.dtype) for k, v in fast_state.items()} == {k: (v.shape, v.dtype) for k, v in plain_state.items()}
    assert all(v.dtype == torch.float32 for v in fast_state.values())  # fp32 master weights
    assert all(torch.isfinite(v).all() for v in fast_state.values())
    # The file a sped-up fit writes has the same structure as a plain one and decodes.
    meta = {"kind": signal.kind, "shape": list(signal.data.shape)}
    data = encode_model(spec, cfg, fast_model.stored_tensors(), meta, bits=8)
    _, _, decoded, header = decode_model(data)
    assert [t["name"] for t in header["tensors"]] == list(plain_model.stored_tensors())
    assert all(p.is_contiguous() for p in decoded.parameters())


@pytest.mark.parametrize("first,second", [(ON, OFF), (OFF, ON)])
def test_checkpoint_resumes_across_speed_settings(tmp_path, tiny_clip, first, second):
    signal = video_signal(tiny_clip[:4, :32, :48])
    ck = tmp_path / "ck"
    opts = FitOptions(model="nerv", overrides=TINY["nerv"], batch_size=2, fit=FitConfig(steps=3, **first))
    fit_signal(signal, opts, CPU, checkpoint_dir=ck)
    tensors, info = ckpt.load_training(ck)

    # Every optimizer moment comes back exactly, whatever layout and kernel wrote it.
    spec, cfg, model, _ = ckpt.load(ck)
    resumed = Trainer(model, model.make_task(signal, CPU, opts), FitConfig(steps=5, **second), spec.optim, CPU)
    resumed.load_training_state(tensors, info)
    assert resumed.state.step == 3
    for pid, p in enumerate(model.parameters()):
        st = resumed.optimizer.state[p]
        assert torch.equal(st["exp_avg"], tensors[f"optim.{pid}.exp_avg"])
        assert torch.equal(st["exp_avg_sq"], tensors[f"optim.{pid}.exp_avg_sq"])
        assert float(st["step"]) == 3
        # fused Adam walks moment and parameter as flat memory: their layouts must agree
        assert st["exp_avg"].stride() == p.stride() and st["exp_avg_sq"].stride() == p.stride()
    assert torch.isfinite(torch.tensor(resumed.step_once()))

    out = fit_signal(signal, dataclasses.replace(opts, fit=FitConfig(steps=5, **second)), CPU, checkpoint_dir=ck, resume=True)
    assert out.state.step == 5 and out.metrics["psnr"] > 5


def test_default_plan_per_device_and_family(tiny_clip, crop64):
    video, image = video_signal(tiny_clip[:4, :32, :48]), image_signal(crop64)
    models = {n: build_model(get_spec(n), video if n in ("nerv", "hnerv") else image, None, None, 0)[1] for n in ("nerv", "hnerv", "siren", "ffn")}
    cpu = {n: plan_for(m, FitConfig(steps=1), CPU) for n, m in models.items()}
    assert cpu["nerv"].amp == cpu["ffn"].amp == cpu_has_bf16()
    assert not cpu["siren"].amp and not cpu["hnerv"].amp  # measured to cost quality in bf16
    assert cpu["nerv"].channels_last and cpu["hnerv"].channels_last and not cpu["siren"].channels_last
    assert all(p.fused_adam and not p.compile for p in cpu.values())
    cuda = {n: plan_for(m, FitConfig(steps=1), torch.device("cuda")) for n, m in models.items()}
    assert all(p.fused_adam and not (p.amp or p.channels_last) for p in cuda.values())  # measured slower on an H200
    forced = plan_for(models["nerv"], FitConfig(steps=1, amp=True, channels_last=True), torch.device("cuda"))
    assert forced.amp and forced.channels_last
    mps = speed_plan(torch.device("mps"), convolutional=True, bf16_safe=True)
    assert not (mps.amp or mps.channels_last or mps.fused_adam)
    forced = plan_for(models["nerv"], FitConfig(steps=1, **OFF), CPU)
    assert not (forced.amp or forced.channels_last or forced.fused_adam)


class _NeverThereTask:
    """Batch PSNR always above the target, full evaluation always below: counts evaluations."""

    steps_per_epoch = 1

    def __init__(self) -> None:
        self.evaluations = 0

    def attach(self, state) -> None:
        pass

    def batch_loss(self, model, generator, step):
        loss = model.weight.square().sum() * 1e-9
        return loss, loss.detach()

    def evaluate(self, model, full=True):
        self.evaluations += 1
        return {"psnr": 0.0}


def test_target_psnr_full_evaluations_are_rationed():
    task = _NeverThereTask()
    trainer = Trainer(nn.Linear(1, 1), task, FitConfig(steps=50, target_psnr=30.0, eval_every=20), get_spec("siren").optim, CPU)
    state = trainer.run()
    assert state.step == 50
    assert task.evaluations == 3  # steps 1, 21, 41: not one per step


@pytest.mark.parametrize("name,batch", [("hashgrid", 64), ("hashgrid", None), ("shacira", 64)])
def test_input_cache_trains_bit_for_bit_like_per_batch_lookups(name, batch, crop64):
    """The cached plan of every pixel, cut per batch, is the per-batch lookup: same batches,
    same parameters after a few steps, whether the cache is on or off."""
    signal = image_signal(crop64[:24, :24])
    spec = get_spec(name)
    over = {"n_levels": 4, "hidden": 16, "layers": 1}
    states = {}
    for cache in (True, False):
        cfg, model = build_model(spec, signal, None, over, seed=0)
        opts = FitOptions(model=name, overrides=over, batch_size=batch, fit=FitConfig(steps=5, input_cache=cache))
        task = model.make_task(signal, CPU, opts)
        trainer = Trainer(model, task, opts.fit, spec.optim, CPU)
        assert trainer.speed.input_cache is cache and (task.input_plan is not None) is cache
        torch.manual_seed(0)  # shacira's training noise draws from the global generator
        losses = [trainer.step_once() for _ in range(5)]
        states[cache] = (losses, model.state_dict())
    assert states[True][0] == states[False][0]
    assert all(torch.equal(v, states[False][1][k]) for k, v in states[True][1].items())


def test_input_cache_is_skipped_past_its_byte_budget(monkeypatch, crop64):
    import inr.tasks

    signal = image_signal(crop64[:24, :24])
    spec = get_spec("hashgrid")
    cfg, model = build_model(spec, signal, None, {"n_levels": 4, "hidden": 16, "layers": 1}, seed=0)
    opts = FitOptions(model="hashgrid", fit=FitConfig(steps=2))
    task = model.make_task(signal, CPU, opts)
    plan = model.plan_inputs(task.sampler.coords)
    monkeypatch.setattr(inr.tasks, "INPUT_CACHE_BYTES", plan.nbytes - 1)
    trainer = Trainer(model, task, opts.fit, spec.optim, CPU)
    assert trainer.speed.input_cache and task.input_plan is None  # on, but too big: per batch
    assert torch.isfinite(torch.tensor(trainer.step_once()))
    # A family with nothing to precompute leaves the task as it was.
    _, siren = build_model(get_spec("siren"), signal, None, None, seed=0)
    task = siren.make_task(signal, CPU, FitOptions(model="siren", fit=FitConfig(steps=1)))
    Trainer(siren, task, FitConfig(steps=1), get_spec("siren").optim, CPU)
    assert task.input_plan is None


@pytest.mark.parametrize("stride, kernel", [(2, 3), (5, 1), (3, 5)])
def test_channels_last_upblock_matches_the_pixel_shuffle_it_replaces(stride, kernel):
    """The channels-last UpBlock permutes its conv's output channels instead of shuffling
    strided ones: same parameters, same outputs and gradients as conv -> PixelShuffle (up to
    float summation order in the input gradient), in fp32 and under bf16 autocast."""
    from inr.models.nerv import UpBlock

    torch.manual_seed(0)
    block = UpBlock(6, 5, stride, kernel)
    x = torch.randn(2, 6, 7, 9, dtype=torch.float64)
    ref_block = UpBlock(6, 5, stride, kernel).double()
    ref_block.load_state_dict(block.state_dict())
    ref_x = x.clone().requires_grad_()
    ref = nn.functional.gelu(nn.functional.pixel_shuffle(ref_block.conv(ref_x), stride))  # the official layer, float64
    ref.square().sum().backward()
    fast_x = x.float().contiguous(memory_format=torch.channels_last).requires_grad_()
    out = block(fast_x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    out.square().sum().backward()
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(block.conv.weight.grad.double(), ref_block.conv.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast_x.grad.double(), ref_x.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(block(x.float()), out.detach().contiguous())  # the NCHW path (decoding) agrees
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = block(x.float().contiguous(memory_format=torch.channels_last))
    assert torch.isfinite(half).all() and (half.float() - out.detach()).abs().max() < 0.1


def test_fp16_path_scales_the_loss_and_keeps_fp32_weights(monkeypatch, tiny_clip):
    """A GPU without bf16 (Volta, Turing) gets fp16 autocast with a GradScaler. The same code
    runs here by forcing the plan: finite steps, learning, fp32 weights, and the model trains
    on under the default plan afterwards."""
    import inr.fit as fit_module
    from inr.device import SpeedPlan

    fp16 = SpeedPlan(amp=True, channels_last=True, fused_adam=True, compile=False, amp_dtype="float16")
    assert fp16.loss_scaling and not dataclasses.replace(fp16, amp_dtype="bfloat16").loss_scaling
    signal = video_signal(tiny_clip[:4, :32, :48])
    with monkeypatch.context() as m:
        m.setattr(fit_module, "speed_plan", lambda *a, **k: fp16)
        spec, cfg, model, tr = _trainer("nerv", signal, {}, steps=30)
        assert tr.scaler is not None
        losses = [tr.step_once() for _ in range(30)]
    assert all(torch.isfinite(torch.tensor(losses))) and min(losses[-5:]) < losses[0]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert tr.scaler.get_scale() > 0
    plain = Trainer(model, model.make_task(signal, CPU, FitOptions(model="nerv", overrides=TINY["nerv"], batch_size=2)), FitConfig(steps=5), spec.optim, CPU)
    assert plain.scaler is None and torch.isfinite(torch.tensor(plain.step_once()))


def test_amp_dtype_is_fp16_only_on_a_gpu_without_bf16(monkeypatch):
    from inr.device import amp_dtype

    assert amp_dtype(CPU) == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert amp_dtype(torch.device("cuda")) == "float16"
    plan = speed_plan(torch.device("cuda"), convolutional=True, bf16_safe=True, amp=True)
    assert plan.amp_dtype == "float16" and plan.loss_scaling
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert not speed_plan(torch.device("cuda"), convolutional=True, bf16_safe=True, amp=True).loss_scaling


def test_nervpp_skip_convolves_before_it_upsamples():
    """NeRV++'s skip runs its 1x1 conv before the bilinear upsampling (cheaper); the function
    is the upsample-then-conv of its definition, checked in float64."""
    from inr.models.nerv import NeRVPPStage

    torch.manual_seed(0)
    stage = NeRVPPStage(6, 4, 3, 3).double()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    pre = stage.pre(x)
    up = nn.functional.interpolate(pre, scale_factor=3, mode="bilinear", align_corners=False)
    ref = stage.post(stage.up(pre) + stage.skip(up))
    torch.testing.assert_close(stage(x), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c_in, c_out", [(1, 1), (2, 1), (4, 6)])
def test_pointwise_conv_on_channels_last_is_a_matmul_with_conv2ds_values(c_in, c_out):
    from inr.models.nerv import pointwise

    torch.manual_seed(0)
    layer = nn.Conv2d(c_in, c_out, 1).double()
    x = torch.randn(2, c_in, 6, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    ref_x, fast_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref = layer(ref_x)
    ref.square().sum().backward()
    ref_grads = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()
    out = pointwise(layer, fast_x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    out.square().sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast_x.grad, ref_x.grad, rtol=1e-12, atol=1e-12)
    for p, g in zip(layer.parameters(), ref_grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-12)
