"""The errors a user of glcic-fast can meet, in one place.

Each says what is wrong and what to do. They live here (core, imports nothing) so that every
layer raises the same types and the command line catches them without importing the layers
that raise them.
"""

from __future__ import annotations


class InputError(ValueError):
    """An image or mask the completer cannot use; the message says what is wrong."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or not a glcic-fast completion network."""


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message says why and what to do."""


class TensorRTNotInstalled(BackendUnavailable):
    """``import tensorrt`` failed; the message says how to install it."""


class EngineError(ValueError):
    """An engine file or sidecar that is missing, corrupt, or built for another setup."""


class ProfileError(ValueError):
    """A shape range that cannot make an optimization profile; the message says how to fix it."""


class EngineBuildError(RuntimeError):
    """TensorRT could not parse or build the network; the message carries TensorRT's errors."""


class WeightsImportError(ValueError):
    """Published weights that cannot be converted; the message says what was found instead."""


class TrainStateError(ValueError):
    """A training state (``--resume``) that is missing, corrupt, a pickle, or not one glcic-fast wrote."""
