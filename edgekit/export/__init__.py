"""Exporters: one per format (tflite, onnx, tensorrt), registered with @register_exporter in export.base."""
