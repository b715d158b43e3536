"""Input encodings: each is an nn.Module exposing `out_dim` and one `forward`."""
from inr.encodings.fourier import GaussianFourierFeatures, PositionalEncoding
from inr.encodings.hashgrid import HashGridConfig, HashGridEncoding, LookupPlan, available_backends

__all__ = [
    "PositionalEncoding",
    "GaussianFourierFeatures",
    "HashGridConfig",
    "HashGridEncoding",
    "LookupPlan",
    "available_backends",
]
