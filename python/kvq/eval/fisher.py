"""Fisher information of the cache from real gradients: jax's autograd on the CPU.

KVQuant weighs each k-means sample by the diagonal Fisher information of that activation, the
squared gradient of the loss with respect to it (S6.6). Here the loss is the calibration text's
mean next-token negative log-likelihood, the model is the same forward pass as in numpy
(:func:`kvq.eval.model.hidden_states` with ``xp=jax.numpy``), and the gradient is taken with respect
to an additive perturbation of every layer's pre-RoPE keys and values, at zero.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from . import model as M

JAX_PACKAGE = "jax==0.10.2"


def fisher_information(model: M.Gemma3, tokens: np.ndarray) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Squared gradients ``[T][256]`` per layer, of the keys and of the values."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as exc:
        raise RuntimeError(f"Fisher information needs jax: pip install '{JAX_PACKAGE}' (or kvq[fisher])") from exc
    jax.config.update("jax_platforms", "cpu")
    n = len(tokens)
    targets = jnp.asarray(tokens[1:])

    def loss(perturbation):
        dk, dv = perturbation

        def cache(layer, keys, values, cos, sin, xp=jnp):
            return M.rope(keys + dk[layer], cos, sin, xp), values + dv[layer]

        hidden, _ = M.hidden_states(model, tokens, cache, xp=jnp)
        logits = hidden[:-1] @ jnp.asarray(model.embedding).T
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(logp[jnp.arange(n - 1), targets])

    zeros = jnp.zeros((M.N_LAYERS, n, M.HEAD_DIM), jnp.float32)
    gk, gv = jax.grad(loss)((zeros, zeros))
    gk, gv = np.asarray(gk, dtype=np.float64), np.asarray(gv, dtype=np.float64)
    # squared, then scaled so that the largest weight is 1 (k-means is invariant to a common factor,
    # and this keeps tiny squares representable in fp32)
    fk, fv = gk ** 2, gv ** 2
    scale = max(fk.max(), fv.max())
    if scale > 0:
        fk, fv = fk / scale, fv / scale
    return [fk[l].astype(np.float32) for l in range(M.N_LAYERS)], [fv[l].astype(np.float32) for l in range(M.N_LAYERS)]
