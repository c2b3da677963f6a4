"""Model builders: the multi-task 3D UNet and its deep-radiomics and segmentation variants."""

from hnprog.models.layers import SENormalization
from hnprog.models.unet import build_multitask_unet

__all__ = ["SENormalization", "build_multitask_unet"]
