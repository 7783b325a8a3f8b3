"""Exporters: one per format (tflite, onnx, tensorrt), registered with @register_exporter in export.base."""

from . import onnx, tensorrt, tflite  # noqa: E402, F401 - the built-in exporters register themselves
