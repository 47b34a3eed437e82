"""Triton Inference Server python-backend model: GLCIC pre- and post-processing (numpy only).

``glcic-fast export-triton-server`` copies this file, unchanged, to ``<repo>/glcic_preprocess/1/
model.py`` and ``<repo>/glcic_postprocess/1/model.py``; the ``stage`` parameter in each
config.pbtxt picks the role. It runs inside Triton without glcic-fast installed, so the few
lines of image math are copied from ``glcic_fast.preprocess`` (``network_input`` with
resize="pad", ``read_mask``'s binarisation, ``network_output_to_image``);
tests/test_triton_server.py checks that both give identical arrays.

preprocess:  IMAGE uint8 (B, H, W, 3) RGB, MASK uint8 (B, H, W) (non-zero = hole)
             -> NETWORK_INPUT float32 (B, 4, H', W'), H', W' = H, W rounded up to multiples of 4
postprocess: NETWORK_OUTPUT float32 (B, 3, H', W'), IMAGE, MASK -> COMPLETED uint8 (B, H, W, 3):
             the network's pixels inside the hole, the input's own pixels everywhere else.
"""

import json

import numpy as np

SIZE_MULTIPLE = 4
INPUT_FILLS = ("subtract-mean", "mean")


def hole_mask(mask: np.ndarray, threshold: float) -> np.ndarray:
    """bool HxW hole from a uint8 mask: 0/1 or 0/255 (or greyscale with ``threshold``, a fraction
    of full scale). For binary masks every threshold in (0, 1] gives the same holes."""
    full = 1.0 if float(mask.max()) <= 1.0 else 255.0
    return mask.astype(np.float32) >= threshold * full


def padded_size(h: int, w: int) -> tuple:
    m = SIZE_MULTIPLE
    return (h + m - 1) // m * m, (w + m - 1) // m * m


def network_input(rgb: np.ndarray, hole: np.ndarray, mean, fill: str) -> np.ndarray:
    """(4, H', W') float32 for one image: ``glcic_fast.preprocess.network_input``, resize="pad"."""
    h, w = hole.shape
    H, W = padded_size(h, w)
    if (H, W) != (h, w):
        pad = ((0, H - h), (0, W - w), (0, 0))
        # reflect needs the image larger than the pad; tiny images repeat their edge instead
        rgb = np.pad(rgb, pad, mode="reflect") if min(h, w) > max(H - h, W - w) else np.pad(rgb, pad, mode="edge")
        hole = np.pad(hole, ((0, H - h), (0, W - w)), mode="constant")
    m = hole.astype(np.float32)[..., None]
    mean_px = np.asarray(mean, dtype=np.float32)
    if fill == "subtract-mean":
        blanked = (rgb - mean_px) * (1.0 - m)
    else:
        blanked = rgb * (1.0 - m) + mean_px * m
    x = np.concatenate([blanked, m], axis=2)
    return np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)


def preprocess(images: np.ndarray, masks: np.ndarray, mean, fill: str, threshold: float) -> np.ndarray:
    """(B, H, W, 3) uint8 + (B, H, W) uint8 -> (B, 4, H', W') float32."""
    if images.ndim != 4 or images.shape[-1] != 3 or masks.shape != images.shape[:3]:
        raise ValueError(f"IMAGE must be (B, H, W, 3) and MASK (B, H, W); got {images.shape} and {masks.shape}")
    out = []
    for image, mask in zip(images, masks):
        rgb = image.astype(np.float32) * (1.0 / 255.0)
        out.append(network_input(rgb, hole_mask(mask, threshold), mean, fill))
    return np.stack(out)


def composite(out: np.ndarray, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Network output (3, H', W') in [0, 1] -> (H, W, 3) uint8; outside the hole: ``image``."""
    h, w = hole.shape
    rgb = out.transpose(1, 2, 0)[:h, :w]  # crop the padding back off
    filled = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return np.where(hole[..., None], filled, image)


def postprocess(outputs: np.ndarray, images: np.ndarray, masks: np.ndarray, threshold: float) -> np.ndarray:
    """(B, 3, H', W') float32 + the request's IMAGE and MASK -> (B, H, W, 3) uint8."""
    return np.stack([composite(o, im, hole_mask(m, threshold)) for o, im, m in zip(outputs, images, masks)])


class TritonPythonModel:
    """Triton python-backend entry point (``stage`` parameter: "preprocess" or "postprocess")."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.stage = params.get("stage", "preprocess")
        if self.stage not in ("preprocess", "postprocess"):
            raise ValueError(f"parameter stage must be preprocess or postprocess, got {self.stage!r}")
        self.mean = [float(v) for v in params.get("mean", "0.4560,0.4472,0.4155").split(",")]
        self.fill = params.get("input_fill", "subtract-mean")
        if len(self.mean) != 3 or self.fill not in INPUT_FILLS:
            raise ValueError(f"bad mean {self.mean} or input_fill {self.fill!r}")
        self.threshold = float(params.get("mask_threshold", "0.5"))

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        responses = []
        for request in requests:
            try:
                image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
                mask = pb_utils.get_input_tensor_by_name(request, "MASK").as_numpy()
                if self.stage == "preprocess":
                    result = pb_utils.Tensor("NETWORK_INPUT", preprocess(image, mask, self.mean, self.fill, self.threshold))
                else:
                    out = pb_utils.get_input_tensor_by_name(request, "NETWORK_OUTPUT").as_numpy()
                    result = pb_utils.Tensor("COMPLETED", postprocess(out, image, mask, self.threshold))
                responses.append(pb_utils.InferenceResponse(output_tensors=[result]))
            except Exception as e:  # one bad request must not fail the whole batch
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(e))))
        return responses
