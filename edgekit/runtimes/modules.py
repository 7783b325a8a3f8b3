"""Which Python modules provide each artifact kind's runtime: the one table, read on the host and on devices.

Standard library only and plain syntax, so a device's old Python can read it while it explains
what is missing.
"""

# artifact suffix -> importable runtime modules, preferred first (the first importable one wins)
RUNTIME_MODULES = {
    ".tflite": ("ai_edge_litert", "tflite_runtime"),
    ".onnx": ("onnxruntime",),
    ".engine": ("tensorrt", "tensorrt_rtx"),
    ".plan": ("tensorrt", "tensorrt_rtx"),
}

# what importing a runtime means for a memory baseline (LiteRT's interpreter is a submodule)
IMPORT_FOR_BASELINE = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
}
