"""`python -m caffe2tf.cli ...` is the `caffe2tf` command."""
from caffe2tf.cli import main

main()
