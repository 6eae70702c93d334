"""Our Caffe schema (`caffe.proto`) and its generated stubs (`caffe_pb2`)."""

from caffe2tf.caffe_proto import caffe_pb2

__all__ = ["caffe_pb2"]
