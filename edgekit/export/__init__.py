"""Exporters: one per format (tflite, onnx, tensorrt), registered by name in export.base."""
