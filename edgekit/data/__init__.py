"""Images in, (degraded, clean) pairs out. Pure numpy + Pillow: no TensorFlow here."""
