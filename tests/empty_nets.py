"""The empty-net family (issue 17), shared by the reader and CLI tests: nets that leave
nothing to convert. Each is (id, prototxt text, fragment of the one-line error)."""
from __future__ import annotations

TRAIN_DATA = ('layer { name: "src" type: "MemoryData" top: "img" top: "label" '
              'memory_data_param { batch_size: 1 channels: 3 height: 4 width: 4 } }\n')
EMPTY_NETS = [
    ("zero_bytes", "", "defines no layers and no inputs"),
    ("whitespace_and_comments", "\n  # nothing here\n\n", "defines no layers and no inputs"),
    ("name_only", 'name: "nothing"\n', "defines no layers and no inputs"),
    ("inputs_only", 'layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n',
     "computes nothing: no layer reads its inputs ['a']"),
    ("legacy_input_only", 'input: "a"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 4\ninput_dim: 4\n',
     "computes nothing: no layer reads its inputs ['a']"),
    ("no_inputs", 'layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 3 } } }\n',
     "has no inputs"),
    ("only_training_layers",
     'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" }\n'
     'layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "y" top: "acc" }\n',
     "has only training layers (1 SoftmaxWithLoss, 1 Accuracy)"),
    ("data_and_training_layers", TRAIN_DATA +
     'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "img" bottom: "label" top: "loss" }\n',
     "computes nothing after dropping its training layers (1 SoftmaxWithLoss)"),
    ("all_excluded_by_phase",
     'layer { name: "a" type: "Input" top: "a" include { phase: TRAIN } input_param { shape { dim: 1 dim: 3 } } }\n'
     'layer { name: "r" type: "ReLU" bottom: "a" top: "r" exclude { phase: TEST } }\n',
     "none of its 2 layer(s) runs in the TEST phase"),
]
