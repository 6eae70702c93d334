"""Verification: a NumPy Caffe-semantics reference executor, reference files, comparisons."""
