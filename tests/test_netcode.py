"""Section NETW (inr/export/netcode.py): step-quantized network weights in one ANS stream."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inr import bitstream
from inr.bitstream import BitstreamError
from inr.export import netcode
from inr.export.codec import decode_model, info


def _tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "a.weight": torch.randn(12, 21, generator=g) * 0.1,
        "a.bias": torch.randn(12, generator=g) * 0.5,
        "b.weight": torch.randn(3, 3, 3, 3, generator=g) * 0.02,
        "zeros": torch.zeros(5),
        "empty": torch.zeros(0, 4),
        "big": torch.randn(7, generator=g) * 40,
    }


def test_steps_and_scales_are_exact_in_float32():
    for e in range(netcode.MAX_E + 1):
        s = netcode.step_of(e)
        assert float(np.float32(s)) == s and s > 0
    assert all(netcode.step_of(e) < netcode.step_of(e + 1) for e in range(netcode.MAX_E))
    for j in range(256):
        assert float(np.float32(netcode.scale_of(j))) == netcode.scale_of(j)


def test_dequantized_weights_match_a_float64_reference():
    """q x step in float32 is the exact product (both have few significant bits), so every
    decoder rebuilds the same weights: compared with the float64 product."""
    w = torch.randn(1000) * 0.3
    for bits in (4, 6, 8, 12):
        e = netcode.step_for(w, bits)
        q = netcode.quantize(w, e)
        assert int(q.abs().max()) <= 2 ** (bits - 1) - 1
        ref = q.double() * netcode.step_of(e)
        assert torch.equal(netcode.dequantize(q, e).double(), ref)
        assert float((ref - w.double()).abs().max()) <= netcode.step_of(e) / 2 + 1e-12


@pytest.mark.parametrize("bits", [4, 7, 10])
def test_network_round_trips_bit_exactly(bits):
    tensors = _tensors()
    steps = {n: netcode.step_for(w, bits) for n, w in tensors.items()}
    payload = netcode.encode_network(tensors, steps)
    shapes = {n: list(w.shape) for n, w in tensors.items()}
    decoded = netcode.decode_network(payload, shapes)
    expect = netcode.quantized_network(tensors, steps)
    assert list(decoded) == list(tensors)
    for n in tensors:
        assert decoded[n].dtype == torch.float32 and torch.equal(decoded[n], expect[n])
    # fewer bits, fewer bytes; the table is 3 bytes a tensor, the all-zero tensors code nothing
    assert len(payload) >= netcode.TENSOR_BYTES * len(tensors)


def test_coarser_steps_cost_fewer_bytes():
    tensors = _tensors(1)
    sizes = [len(netcode.encode_network(tensors, {n: netcode.step_for(w, b) for n, w in tensors.items()})) for b in (4, 6, 8, 10)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_damaged_payloads_are_bitstream_errors():
    tensors = _tensors(2)
    steps = {n: netcode.step_for(w, 8) for n, w in tensors.items()}
    payload = netcode.encode_network(tensors, steps)
    shapes = {n: list(w.shape) for n, w in tensors.items()}
    bad = [
        payload[:5],  # shorter than the table
        payload[:-1],  # not whole words
        payload + b"\x01\x00\x00\x00",  # a word left over
        bytes([200]) + payload[1:],  # step index out of range
        payload[:1] + bytes([17]) + payload[2:],  # |q| bound out of range
        payload[: 3 * len(shapes)],  # the stream missing
    ]
    for data in bad:
        with pytest.raises(BitstreamError):
            netcode.decode_network(data, shapes)


def test_grid_files_carry_their_network_in_netw(crop64):
    """A rate-aware file: no per-row sections, the header lists no tensors, `info` reads the
    step table, and the decoder's network is the encoder's quantized one."""
    from inr.export.hostile import seed_file
    from inr.signals import image_signal

    data = seed_file(image_signal(crop64[:32, :32]), "grid", 2_000)
    box = bitstream.read(data)
    assert box.header["weights"] == "steps" and box.header["tensors"] == []
    assert set(box.sections) == {"NETW", "LATS"}
    spec, cfg, model, _ = decode_model(data)
    table = info(data)["network"]
    assert [t["name"] for t in table] == list(model.stored_tensors())
    for t in table:
        w = model.stored_tensors()[t["name"]]
        q = w.double() / t["step"]
        assert torch.equal(q, q.round()) and float(q.abs().max()) <= t["max_abs"]


def test_a_header_listing_tensors_with_step_weights_is_refused(crop64):
    from inr.export.hostile import seed_file
    from inr.signals import image_signal

    data = seed_file(image_signal(crop64[:32, :32]), "grid", 2_000)
    box = bitstream.read(data)
    for edit in ({"tensors": [{"name": "x", "shape": [1], "bits": 8, "pruned": False, "coder": "laplace", "bytes": 1}]}, {"weights": "bytes"}):
        with pytest.raises(BitstreamError):
            decode_model(bitstream.write({**box.header, **edit}, box.sections))
    sections = {k: v for k, v in box.sections.items() if k != "NETW"}
    with pytest.raises(BitstreamError, match="NETW"):
        decode_model(bitstream.write(box.header, sections))


def test_the_depth_search_prices_each_candidate_at_the_steps_the_file_would_use(crop64):
    """Every candidate's bytes are those of the network quantized at the steps that candidate
    renders with (the float weights' steps), and the steps returned are one candidate's."""
    from inr.export.grid_codec import GridTask, RateTarget, choose_network_steps
    from inr.models.grid import GridConfig, LatentGrid
    from inr.signals import image_signal

    signal = image_signal(crop64[:32, :32])
    torch.manual_seed(0)
    model = LatentGrid(GridConfig(frames=1, height=32, width=32, levels=3, hidden=12, hidden_layers=1)).eval()
    model.start_from(signal)
    with torch.no_grad():  # weights off any step grid
        for p in model.stored_tensors().values():
            p.add_(torch.randn_like(p) * 1e-3)
    task = GridTask(signal, torch.device("cpu"), RateTarget(lam=0.01))
    floats = {n: w.detach().clone() for n, w in model.stored_tensors().items()}
    priced = []

    def encode_weights(steps):
        rendered = {n: w.detach().clone() for n, w in model.stored_tensors().items()}
        assert all(torch.equal(rendered[n], netcode.quantized_network({n: floats[n]}, steps)[n]) for n in floats)
        priced.append(dict(steps))
        return netcode.encode_network(floats, steps)

    chosen = choose_network_steps(model, task, list(floats), encode_weights)
    assert chosen in priced
    assert all(torch.equal(w, floats[n]) for n, w in model.stored_tensors().items())  # restored


class _StandInTask:
    """What `choose_network_steps` asks of a task: distortion as each module's quantization
    error from the float weights at a set sensitivity, a fixed latent rate, and which frames
    are scored (None: all, so the latents are priced with every candidate)."""

    lam = 1e-4

    def __init__(self, model, sensitivity: dict[str, float], scored=None, pixels: int = 1024):
        self.floats = {n: w.detach().clone() for n, w in model.stored_tensors().items()}
        self.sensitivity, self.scored, self.pixels = sensitivity, scored, pixels
        self.rate_passes = 0

    def eval_frames(self, pixels=None):
        return self.scored

    def mse(self, model, frames=None):
        return sum(self.sensitivity[n.split(".")[0]] * float(((w - self.floats[n]) ** 2).sum()) for n, w in model.stored_tensors().items())

    def latent_bits(self, model):
        self.rate_passes += 1
        return 1000.0


def _random_grid(size: int, levels: int, hidden: int):
    from inr.models.grid import GridConfig, LatentGrid

    torch.manual_seed(0)
    model = LatentGrid(GridConfig(frames=1, height=size, width=size, levels=levels, hidden=hidden, hidden_layers=1)).eval()
    with torch.no_grad():
        for p in model.stored_tensors().values():
            p.copy_(torch.randn_like(p) * 0.1)
    return model


def test_the_depth_search_keeps_the_cheapest_candidate_it_rendered_and_tries_every_coarser_depth():
    """Each module's depth is searched down the whole range, not two bits below the whole
    network's: a module the output hardly depends on (a context network only steers the
    rate) is coarsened to the floor while the synthesis keeps its fine steps, and the steps
    returned are the lowest mse + lambda x bpp of every candidate rendered."""
    from inr.export.grid_codec import WEIGHT_BITS, choose_network_steps, weight_groups

    model = _random_grid(32, 3, 12)
    task = _StandInTask(model, {"synthesis": 1e3, "refine": 1.0, "context": 1e-6})
    floats = task.floats
    costs: dict[tuple, float] = {}

    def encode_weights(steps):
        data = netcode.encode_network(floats, steps)
        costs[tuple(sorted(steps.items()))] = task.mse(model) + task.lam * (len(data) * 8 + task.latent_bits(model)) / task.pixels
        return data

    chosen = choose_network_steps(model, task, list(floats), encode_weights)
    assert costs[tuple(sorted(chosen.items()))] == pytest.approx(min(costs.values()), rel=1e-12)

    def depth(module: str) -> int:  # the bit depth whose step its first tensor got
        first = next(g[0] for g in weight_groups(list(floats)) if g[0].startswith(module))
        return next(b for b in range(WEIGHT_BITS[0], 17) if netcode.step_for(floats[first], b) == chosen[first])

    assert depth("context") == WEIGHT_BITS[0] and depth("synthesis") >= WEIGHT_BITS[0] + 4


def test_the_depth_search_takes_the_latents_bits_it_is_given_instead_of_a_rate_pass():
    """A large GOP's latents are priced once, under the float weights: the encoder passes the
    bits its last evaluation measured (seconds of a 1080p GOP's fixed cost) and the search
    prices every candidate with them, making no rate pass of its own."""
    from inr.export.grid_codec import choose_network_steps

    model = _random_grid(16, 2, 8)
    task = _StandInTask(model, {"synthesis": 1.0, "refine": 1.0, "context": 1.0}, scored=[0], pixels=256)  # a sample of the frames

    def encode_weights(steps):
        return netcode.encode_network(task.floats, steps)

    given = choose_network_steps(model, task, list(task.floats), encode_weights, latent_bits=1000.0)
    assert task.rate_passes == 0
    assert choose_network_steps(model, task, list(task.floats), encode_weights) == given and task.rate_passes == 1


def test_the_depth_search_stops_refining_modules_at_its_deadline():
    """A clip's per-module search once took 48 renders and 16 s of a 60 s encode: with a
    deadline already passed only the whole network's depth is chosen (one candidate per
    WEIGHT_BITS), while without one the same model's modules are refined further."""
    import time

    from inr.export.grid_codec import WEIGHT_BITS, choose_network_steps

    model = _random_grid(32, 3, 12)
    task = _StandInTask(model, {"synthesis": 1e3, "refine": 1.0, "context": 1e-6})
    priced = []

    def encode_weights(steps):
        priced.append(steps)
        return netcode.encode_network(task.floats, steps)

    late = choose_network_steps(model, task, list(task.floats), encode_weights, deadline=time.perf_counter())
    assert len(priced) == len(WEIGHT_BITS) and late in priced
    priced.clear()
    free = choose_network_steps(model, task, list(task.floats), encode_weights)
    assert len(priced) > len(WEIGHT_BITS) and free != late
