"""glcic-fast: fast, trustworthy image completion with GLCIC (Iizuka et al., SIGGRAPH 2017)."""

from .api import Completer, load
from .checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from .folding import FoldedLayer, fold_batchnorm
from .layers import COMPLETION_LAYERS, ConvSpec, macs_per_pixel
from .model import CompletionNetwork, ContextDiscriminator
from .preprocess import InputError

__version__ = "0.1.0"

__all__ = [
    "COMPLETION_LAYERS",
    "CheckpointError",
    "Completer",
    "CompletionNetwork",
    "ContextDiscriminator",
    "ConvSpec",
    "FoldedLayer",
    "InputError",
    "fold_batchnorm",
    "load",
    "load_checkpoint",
    "macs_per_pixel",
    "read_metadata",
    "save_checkpoint",
]
