"""edgekit: compress, export and benchmark image-restoration networks for edge targets.

Importing this package stays light: TensorFlow, LiteRT, ONNX and TensorRT are imported
only inside the modules that use them.
"""

__version__ = "0.1.0"
