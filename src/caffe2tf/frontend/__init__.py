"""Frontend: reading Caffe files into the IR (prototxt, caffemodel, V1 upgrade, phase
filtering, in-place renaming, fork readings, net checks, shape rules)."""
