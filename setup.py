"""glcic-fast packaging.

The repository keeps kernels/ and train/ at the top level (the project's layout); they install
as the subpackages ``glcic_fast.kernels`` and ``glcic_fast.train`` so nothing generic like a
top-level ``train`` package lands in site-packages.
"""

from setuptools import setup

setup(
    name="glcic-fast",
    version="0.1.0",
    description="Fast, trustworthy image completion with GLCIC: reference model, training, "
    "Triton kernels, TensorRT engines and latency benchmarks",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=[
        "glcic_fast",
        "glcic_fast.app",
        "glcic_fast.backends",
        "glcic_fast.bench",
        "glcic_fast.cli",
        "glcic_fast.export",
        "glcic_fast.kernels",
        "glcic_fast.serving",
        "glcic_fast.train",
        "glcic_fast.weights_import",
    ],
    package_dir={
        "glcic_fast": "glcic_fast",
        "glcic_fast.kernels": "kernels",
        "glcic_fast.train": "train",
    },
    package_data={"glcic_fast": ["data/*", "data/photos/*", "data/photos/calibration/*", "data/photos/heldout/*"],
                  "glcic_fast.app": ["static/*"]},
    include_package_data=False,
    install_requires=[
        # A range, so an installed CPU build (2.13 on the dev machines / CI) satisfies it and
        # pip does not fetch a multi-GB CUDA wheel.
        "torch>=2.4,<3",
        "numpy>=1.23",
        "safetensors>=0.4",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        # The contrib build: the same cv2 as opencv-python-headless plus the contrib modules
        # (``glcic-fast eval``'s FSR_FAST baseline is cv2.xphoto). Only one OpenCV package may
        # be installed in an environment (they all provide cv2), so we depend on the superset
        # rather than adding contrib beside the main package.
        "opencv-contrib-python-headless>=4.8",
        "pillow>=9",
        "tqdm>=4.60",
        "tabulate>=0.9",
    ],
    extras_require={
        "triton": ["triton>=3.1"],
        "tensorrt": ["tensorrt>=10.8", "cuda-python>=12.6"],
        "import": ["torchfile>=0.1"],
        # The fast CPU path: OpenVINO (fp32/bf16/int8) and NNCF (its int8 quantization).
        "openvino": ["openvino>=2024.4", "nncf>=2.14"],
        "bench": ["matplotlib>=3.6", "pytest-benchmark>=4"],
        # glcic-fast app: the web page's server (uploads are read as plain request bodies, so no
        # python-multipart: Starlette spools form uploads over 1 MB to disk)
        "app": ["fastapi>=0.100", "uvicorn>=0.23"],
        # Talking to a Triton Inference Server: glcic_fast.client, glcic-fast bench-serve.
        "client": ["tritonclient[http,grpc]>=2.41"],
        # glcic-fast serve: the client, plus nothing here for the server itself, which runs from
        # its own venv (nvidia-pytriton's python backend needs numpy<2; serve creates that venv).
        "serve": ["tritonclient[http,grpc]>=2.41"],
        # Only for an environment dedicated to serving: the server in this very environment.
        # It pins numpy<2 here (glcic-fast itself runs on numpy 1 or 2).
        "triton-server": ["nvidia-pytriton==0.7.0", "numpy>=1.23,<2", "tritonclient[http,grpc]>=2.41"],
        "test": ["pytest>=7", "torchfile>=0.1", "triton>=3.1", "matplotlib>=3.6", "pytest-benchmark>=4", "mypy>=1.8",
                 "import-linter>=2.0", "fastapi>=0.100", "uvicorn>=0.23", "tritonclient[http,grpc]>=2.41",
                 "openvino>=2024.4", "nncf>=2.14",
                 # drives the installed Chromium in tests/test_app_browser.py; downloads no browser
                 "playwright>=1.40"],
    },
    entry_points={"console_scripts": ["glcic-fast=glcic_fast.cli:main"]},
)
