"""Export: pruning, quantization and entropy coding of a fitted model into a `.inr` file."""
