"""Benchmark hnprog's core: C-index, Cox loss, and the multi-task UNet on this CPU.

Prints three tables:

1. ``concordance_index``: hnprog vs scikit-survival vs lifelines (given ``-risk``) at
   n = 1e3, 1e4, 5e4 samples (20% events), with the three values side by side and the
   speed-up of hnprog as a ratio.
2. ``CoxLoss`` forward plus gradient: hnprog's sort-based loss vs a naive version that builds
   the N x N risk-set matrix, both compiled on the active Keras backend, N = 10 .. 1e4.
3. ``build_multitask_unet`` (paper defaults): forward and train-step seconds per sample at
   64^3 and 144^3, and the achieved GFLOP/s from FLOPs counted analytically from the layer
   shapes (2 FLOPs per multiply-add of every convolution and dense layer; a train step is
   counted as 3x the forward FLOPs).

Usage (from the repository root; the backend is the usual KERAS_BACKEND variable)::

    python benchmarks/bench_core.py                      # all three tables
    python benchmarks/bench_core.py --only model --sizes 64
    KERAS_BACKEND=jax python benchmarks/bench_core.py --only cox model --sizes 64
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


from _timing import best_of  # noqa: E402  (benchmarks/ is on sys.path when run)

def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls, in seconds (after one warm-up call)."""
    return best_of(repeats, fn, warmup=True)


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}\n", flush=True)
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(" --- " for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


# ------------------------------------------------------------------------------ C-index


def bench_cindex(sizes: list[int], repeats: int) -> None:
    from lifelines.utils import concordance_index as lifelines_cindex
    from sksurv.metrics import concordance_index_censored

    from hnprog.metrics import concordance_index

    rows = []
    for n in sizes:
        rng = np.random.default_rng(n)
        time_ = np.round(rng.exponential(1000.0, n))  # whole days: tied times
        event = rng.random(n) < 0.2
        risk = np.round(rng.normal(size=n) - 1e-3 * time_ * event, 3)  # some tied risks
        ours = concordance_index(event=event, time=time_, risk=risk)
        theirs = concordance_index_censored(event, time_, risk)[0]
        lifelines = lifelines_cindex(time_, -risk, event)
        t_ours = best_time(lambda: concordance_index(event=event, time=time_, risk=risk), repeats)
        sk_repeats = 1 if n > 10_000 else repeats
        t_sk = best_time(lambda: concordance_index_censored(event, time_, risk), sk_repeats)
        t_ll = best_time(lambda: lifelines_cindex(time_, -risk, event), repeats)
        rows.append(
            [
                f"{n:,}",
                f"{ours:.12f}",
                f"{theirs:.12f}",
                f"{lifelines:.12f}",
                f"{t_ours * 1e3:.1f}",
                f"{t_sk * 1e3:.1f}",
                f"{t_ll * 1e3:.1f}",
                f"{t_sk / t_ours:.0f}x",
                f"{t_ll / t_ours:.1f}x",
            ]
        )
    print_table(
        "C-index (Harrell): hnprog vs scikit-survival vs lifelines (given -risk); times in ms",
        ["n", "hnprog", "sksurv", "lifelines", "hnprog ms", "sksurv ms", "lifelines ms",
         "vs sksurv", "vs lifelines"],
        rows,
    )


# ----------------------------------------------------------------------------- Cox loss


def naive_cox_loss(y_true, y_pred):
    """Breslow Cox loss with an explicit N x N risk-set matrix (the usual implementation)."""
    from keras import ops

    time_, event = y_true[:, 0], y_true[:, 1]
    risk = ops.reshape(y_pred, (-1,))
    at_risk = time_[None, :] >= time_[:, None]  # row i: samples still at risk at T_i
    masked = ops.where(at_risk, risk[None, :], ops.full_like(at_risk, -np.inf, dtype=risk.dtype))
    log_risk_set = ops.logsumexp(masked, axis=1)
    return -ops.sum(event * (risk - log_risk_set)) / ops.maximum(ops.sum(event), 1.0)


def compiled_value_and_grad(loss_fn: Callable) -> Callable:
    """Compile ``risk -> (loss, d loss / d risk)`` on the active backend."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def step(y_true, risk):
            with tf.GradientTape() as tape:
                tape.watch(risk)
                value = loss_fn(y_true, risk[:, None])
            return value, tape.gradient(value, risk)

        return step
    if backend == "jax":
        import jax

        step = jax.jit(jax.value_and_grad(lambda risk, y_true: loss_fn(y_true, risk[:, None])))
        return lambda y_true, risk: step(risk, y_true)
    raise SystemExit(f"no gradient helper for backend {backend}")


def bench_cox(sizes: list[int], repeats: int) -> None:
    import keras

    from hnprog.losses import CoxLoss

    ours = CoxLoss()
    ours_step = compiled_value_and_grad(lambda y, p: ours(y, p))
    naive_step = compiled_value_and_grad(naive_cox_loss)
    rows = []
    for n in sizes:
        rng = np.random.default_rng(n)
        y_true = keras.ops.convert_to_tensor(
            np.stack([rng.integers(1, 3000, n), rng.random(n) < 0.3], axis=1).astype("float32")
        )
        risk = keras.ops.convert_to_tensor(rng.normal(size=n).astype("float32"))
        ours_value = float(ours_step(y_true, risk)[0])
        naive_value = float(naive_step(y_true, risk)[0])
        t_ours = best_time(lambda: keras.ops.convert_to_numpy(ours_step(y_true, risk)[1]), repeats)
        t_naive = best_time(
            lambda: keras.ops.convert_to_numpy(naive_step(y_true, risk)[1]), repeats
        )
        rows.append(
            [
                f"{n:,}",
                f"{ours_value:.6f}",
                f"{naive_value:.6f}",
                f"{t_ours * 1e3:.2f}",
                f"{t_naive * 1e3:.2f}",
                f"{t_naive / t_ours:.1f}x",
            ]
        )
    print_table(
        f"CoxLoss forward + gradient ({keras.backend.backend()}, compiled): sort-based vs naive "
        "N x N; times in ms",
        ["N", "hnprog loss", "naive loss", "hnprog ms", "naive ms", "speed-up"],
        rows,
    )


# -------------------------------------------------------------------------------- model


def count_flops(model) -> int:
    """FLOPs of one forward pass of one sample: 2 per multiply-add of convs and dense layers."""
    from keras import layers

    flops = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv3DTranspose):
            in_voxels = int(np.prod(layer.input.shape[1:4]))
            kernel = int(np.prod(layer.kernel.shape))  # k^3 * C_out * C_in
            flops += 2 * in_voxels * kernel
        elif isinstance(layer, layers.Conv3D):
            out_voxels = int(np.prod(layer.output.shape[1:4]))
            flops += 2 * out_voxels * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, layers.Dense):
            flops += 2 * int(np.prod(layer.kernel.shape))
    return flops


def bench_model(sizes: list[int], batch_size: int, repeats: int) -> None:
    import keras

    from hnprog.losses import CoxLoss, DiceLoss
    from hnprog.models import build_multitask_unet

    rows = []
    for size in sizes:
        model = build_multitask_unet(input_shape=(size, size, size, 2))
        flops = count_flops(model)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(batch_size, size, size, size, 2)).astype("float32")
        y = {
            "segmentation": (rng.random((batch_size, size, size, size, 1)) < 0.05).astype(
                "float32"
            ),
            "risk": np.stack(
                [np.arange(1, batch_size + 1) * 100.0, np.arange(batch_size) % 2], axis=1
            ).astype("float32"),
        }
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss={"risk": CoxLoss(), "segmentation": DiceLoss()},
        )
        t_forward = best_time(lambda: model.predict_on_batch(x), repeats) / batch_size
        t_train = best_time(lambda: model.train_on_batch(x, y), repeats) / batch_size
        rows.append(
            [
                f"{size}^3",
                f"{flops / 1e9:.1f}",
                f"{t_forward:.3f}",
                f"{flops / t_forward / 1e9:.1f}",
                f"{t_train:.3f}",
                f"{3 * flops / t_train / 1e9:.1f}",
            ]
        )
        del model
        keras.backend.clear_session()
    print_table(
        f"build_multitask_unet (paper defaults, {keras.backend.backend()}, batch {batch_size}, "
        f"{os.cpu_count()} CPUs): seconds per sample",
        ["input", "GFLOP / forward", "forward s", "forward GFLOP/s", "train step s",
         "train GFLOP/s (3x fwd)"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=["cindex", "cox", "model"],
                        default=["cindex", "cox", "model"], help="tables to run")
    parser.add_argument("--cindex-sizes", nargs="+", type=int, default=[1_000, 10_000, 50_000])
    parser.add_argument("--cox-sizes", nargs="+", type=int, default=[10, 100, 1_000, 10_000])
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 144],
                        help="model input edge in voxels (multiple of 16)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if "cindex" in args.only:
        bench_cindex(args.cindex_sizes, args.repeats)
    if "cox" in args.only:
        bench_cox(args.cox_sizes, args.repeats)
    if "model" in args.only:
        bench_model(args.sizes, args.batch_size, args.repeats)


if __name__ == "__main__":
    main()
