"""edgekit's own Keras layers: small, serialisable, and known to convert cleanly.

These are the only non-tf_keras classes the loader trusts without `allow_custom_code`: their code
ships with edgekit, so rebuilding them from a stored config executes nothing from the file.
Build them through `layer_classes()` so TensorFlow is only imported when a model is built.
"""

from __future__ import annotations

from functools import cache

# Class names (as stored in a model config) of the layers defined here.
EDGEKIT_LAYERS = ("DepthToSpace", "SavedModelSignature")


@cache
def layer_classes() -> dict[str, type]:
    """{class name: class}; registered for deserialisation as `edgekit>Name`."""
    tf, keras = _tf()

    @keras.utils.register_keras_serializable(package="edgekit")
    class DepthToSpace(keras.layers.Layer):
        """Pixel shuffle: (H, W, C*r*r) -> (H*r, W*r, C) with tf.nn.depth_to_space (NHWC).

        Converts to the TFLite builtin DEPTH_TO_SPACE (int8 capable), unlike a Lambda, and its
        config is plain data, so loading it runs no code from the model file.
        """

        def __init__(self, block_size: int, **kwargs):
            super().__init__(**kwargs)
            self.block_size = int(block_size)

        def call(self, inputs):
            return tf.nn.depth_to_space(inputs, self.block_size)

        def compute_output_shape(self, input_shape):
            n, h, w, c = tf.TensorShape(input_shape).as_list()
            r = self.block_size
            return tf.TensorShape(
                [n, None if h is None else h * r, None if w is None else w * r, c // (r * r)]
            )

        def get_config(self):
            return {**super().get_config(), "block_size": self.block_size}

    class SavedModelSignature(keras.layers.Layer):
        """Calls a SavedModel's serving signature (one image in, one image out).

        Used to give a SavedModel without Keras metadata the same tf_keras face as every other
        model. Not serialisable: it lives only in memory, next to the loaded SavedModel.
        """

        def __init__(self, loaded, signature_key: str, input_key: str, output_key: str, **kwargs):
            super().__init__(trainable=False, **kwargs)
            self._loaded = loaded  # keeps the SavedModel's variables alive
            self._fn = loaded.signatures[signature_key]
            self._input_key = input_key
            self._output_key = output_key
            self._dtype_in = self._fn.structured_input_signature[1][input_key].dtype

        def call(self, inputs):
            out = self._fn(**{self._input_key: tf.cast(inputs, self._dtype_in)})
            return tf.cast(out[self._output_key], tf.float32)

    return {"DepthToSpace": DepthToSpace, "SavedModelSignature": SavedModelSignature}


def custom_objects() -> dict[str, type]:
    """Mapping for tf_keras.models.load_model(custom_objects=...): edgekit's serialisable layers."""
    classes = layer_classes()
    return {
        "DepthToSpace": classes["DepthToSpace"],
        "edgekit>DepthToSpace": classes["DepthToSpace"],
    }


def _tf():
    from ..tfcompat import import_tf

    return import_tf()
