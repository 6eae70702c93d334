"""caffe2tf: convert Caffe models to TensorFlow/Keras exactly, and prove it layer by layer."""

__version__ = "0.1.0"
