"""Triton Inference Server python-backend model: GLCIC pre- and post-processing (numpy only).

``glcic-fast export-triton-server`` copies this file, unchanged, to ``<repo>/glcic_preprocess/1/
model.py`` and ``<repo>/glcic_postprocess/1/model.py``; the ``stage`` parameter in each
config.pbtxt picks the role. It runs inside Triton without glcic-fast installed, so the few
lines of image math are copied from ``glcic_fast.preprocess`` (``network_input`` with
resize="pad", ``read_mask``'s rules, ``composite``);
tests/test_triton_server.py checks that both give identical arrays and refuse the same masks.

preprocess:  IMAGE uint8 (B, H, W, 3) RGB, MASK uint8 (B, H, W) (non-zero = hole)
             -> NETWORK_INPUT float32 (B, 4, H', W'), H', W' = H, W rounded up to multiples of 4
postprocess: NETWORK_OUTPUT float32 (B, 3, H', W'), IMAGE, MASK -> COMPLETED uint8 (B, H, W, 3):
             the network's pixels inside the hole, the input's own pixels everywhere else.

A request the model cannot serve (mask not binary, sizes that differ or lie outside the
repository's size range, no hole) gets an error response whose message starts with
``ERROR_PREFIX``; the other requests of the same batch are served as usual.
"""

import json

import numpy as np

SIZE_MULTIPLE = 4
INPUT_FILLS = ("subtract-mean", "mean")
ERROR_PREFIX = "glcic input error: "  # glcic_fast.client turns these into InputError


class RequestError(ValueError):
    """A request this model refuses; its message goes back to the client."""


def hole_mask(mask: np.ndarray, threshold, what: str = "MASK") -> np.ndarray:
    """bool HxW hole from a uint8 mask by ``glcic_fast.preprocess.read_mask``'s rules.

    Without ``threshold`` the mask must be binary (0 and 1, or 0 and 255); with one (a
    fraction of full scale) greyscale masks are thresholded.
    """
    full = 1.0 if float(mask.max()) <= 1.0 else 255.0
    if threshold is None:
        hole = mask > 0
        stray_px = hole & (mask != full)
        if stray_px.any():
            stray = np.unique(mask[stray_px])
            raise RequestError(
                f"{what}: not binary (holds {stray.size} values besides 0 and {full:g}, e.g. {stray[0]}); "
                "send 0/255 or 0/1 masks, or export the repository with --mask-threshold for greyscale masks"
            )
    else:
        hole = mask.astype(np.float32) >= threshold * full
    if not hole.any():
        raise RequestError(f"{what}: has no hole pixels, so there is nothing to complete")
    if hole.all():
        raise RequestError(f"{what}: every pixel is a hole, so there is no context to complete from")
    return hole


def padded_size(h: int, w: int) -> tuple:
    m = SIZE_MULTIPLE
    return (h + m - 1) // m * m, (w + m - 1) // m * m


def check_size(h: int, w: int, limits) -> None:
    """Refuse images whose padded size lies outside ``limits`` (min_h, max_h, min_w, max_w)."""
    H, W = padded_size(h, w)
    min_h, max_h, min_w, max_w = limits
    if not (min_h <= H <= max_h and min_w <= W <= max_w):
        raise RequestError(
            f"IMAGE: {h}x{w} (network size {H}x{W}) is outside the sizes this server runs: height {min_h}-{max_h}, "
            f"width {min_w}-{max_w} after rounding up to a multiple of {SIZE_MULTIPLE}; resize it on the client"
        )


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


def check_pair(images: np.ndarray, masks: np.ndarray) -> None:
    if images.ndim != 4 or images.shape[-1] != 3:
        raise RequestError(f"IMAGE must be (batch, H, W, 3) RGB, got shape {images.shape}")
    if masks.shape != images.shape[:3]:
        raise RequestError(
            f"MASK must match IMAGE's batch and size: IMAGE is {images.shape[1]}x{images.shape[2]} "
            f"(batch {images.shape[0]}), MASK is {'x'.join(str(d) for d in masks.shape[1:])} (batch {masks.shape[0]})"
        )


def _item(what: str, i: int, batch: int) -> str:
    return what if batch == 1 else f"{what}[{i}]"


def preprocess(images: np.ndarray, masks: np.ndarray, mean, fill: str, threshold, limits=None) -> np.ndarray:
    """(B, H, W, 3) uint8 + (B, H, W) uint8 -> (B, 4, H', W') float32."""
    check_pair(images, masks)
    if limits is not None:
        check_size(images.shape[1], images.shape[2], limits)
    out = []
    for i, (image, mask) in enumerate(zip(images, masks)):
        rgb = image.astype(np.float32) * (1.0 / 255.0)
        out.append(network_input(rgb, hole_mask(mask, threshold, _item("MASK", i, len(masks))), mean, fill))
    return np.stack(out)


def composite(out: np.ndarray, image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Network output (3, H', W') in [0, 1] -> (H, W, 3) uint8; outside the hole: ``image``."""
    h, w = hole.shape
    rgb = out.transpose(1, 2, 0)[:h, :w]  # crop the padding back off
    filled = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return np.where(hole[..., None], filled, image)


def postprocess(outputs: np.ndarray, images: np.ndarray, masks: np.ndarray, threshold) -> np.ndarray:
    """(B, 3, H', W') float32 + the request's IMAGE and MASK -> (B, H, W, 3) uint8."""
    return np.stack([composite(o, im, hole_mask(m, threshold)) for o, im, m in zip(outputs, images, masks)])


def parse_parameters(config: dict) -> dict:
    """The model's settings from its config.pbtxt ``parameters`` (all strings there)."""
    params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
    stage = params.get("stage", "preprocess")
    if stage not in ("preprocess", "postprocess"):
        raise ValueError(f"parameter stage must be preprocess or postprocess, got {stage!r}")
    mean = [float(v) for v in params.get("mean", "").split(",") if v]
    fill = params.get("input_fill", "subtract-mean")
    if len(mean) != 3 or fill not in INPUT_FILLS:
        raise ValueError(f"bad mean {mean} or input_fill {fill!r}")
    threshold = float(params["mask_threshold"]) if params.get("mask_threshold") else None
    limits = tuple(int(v) for v in params["size_limits"].split(",")) if params.get("size_limits") else None
    return {"stage": stage, "mean": mean, "fill": fill, "threshold": threshold, "limits": limits}


class TritonPythonModel:
    """Triton python-backend entry point (``stage`` parameter: "preprocess" or "postprocess")."""

    def initialize(self, args):
        self.params = parse_parameters(json.loads(args["model_config"]))

    def execute(self, requests):
        import triton_python_backend_utils as pb_utils

        p = self.params
        responses = []
        for request in requests:
            try:
                image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
                mask = pb_utils.get_input_tensor_by_name(request, "MASK").as_numpy()
                if p["stage"] == "preprocess":
                    x = preprocess(image, mask, p["mean"], p["fill"], p["threshold"], p["limits"])
                    result = pb_utils.Tensor("NETWORK_INPUT", x)
                else:
                    out = pb_utils.get_input_tensor_by_name(request, "NETWORK_OUTPUT").as_numpy()
                    result = pb_utils.Tensor("COMPLETED", postprocess(out, image, mask, p["threshold"]))
                responses.append(pb_utils.InferenceResponse(output_tensors=[result]))
            except RequestError as e:  # one bad request must not fail the whole batch
                error = pb_utils.TritonError(ERROR_PREFIX + str(e), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
            except Exception as e:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(repr(e))))
        return responses
