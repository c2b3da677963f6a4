"""Model builders: the multi-task 3D UNet and its deep-radiomics and segmentation variants.

The names are imported lazily, so :mod:`hnprog.models.task` (the task vocabulary, used by the
Keras-free training settings and preset metadata) loads without Keras.
"""

from __future__ import annotations

from hnprog._lazy import lazy_attributes

_PUBLIC_API = {
    "SENormalization": "hnprog.models.layers",
    "Task": "hnprog.models.task",
    "build_multitask_unet": "hnprog.models.unet",
    "GradientReversal": "hnprog.models.layers",
    "UncertaintyWeighting": "hnprog.models.layers",
    "risk_activation_map": "hnprog.models.risk_map",
}

__all__ = sorted(_PUBLIC_API)

__getattr__, __dir__ = lazy_attributes(__name__, _PUBLIC_API)
