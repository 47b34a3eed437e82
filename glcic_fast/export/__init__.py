"""What glcic-fast writes for other runtimes: ONNX files, TensorRT engines, Triton Inference
Server model repositories.

| module | writes | command |
|---|---|---|
| ``onnx`` | an ONNX model with its provenance in the metadata | ``glcic-fast export-onnx`` |
| ``tensorrt`` | a TensorRT plan and its JSON sidecar (``glcic_fast.engine_format``) | ``glcic-fast build-engine`` |
| ``triton_server`` | a model repository serving an engine (ensemble + python models) | ``glcic-fast export-triton-server`` |

Exporters depend on the core modules only (model resolution, the ONNX graph builder, the engine
format), never on the completion API or on a runtime backend; CI's import contracts keep it so.
"""
