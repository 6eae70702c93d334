"""Record Caffe's activations, layer by layer, into a ``caffe-reference/1`` file.

A standalone module: it needs only NumPy, h5py and pycaffe (Pillow to read
images), never TensorFlow or the rest of caffe2tf, so it can be copied to the old
machine that still runs Caffe::

    python dump_reference.py deploy.prototxt weights.caffemodel -o reference.h5 \\
        --input photo.jpg --bgr --mean 103.939,116.779,123.68

and the ``.h5`` brought back for ``caffe2tf diff --reference reference.h5``.
(``caffe2tf dump-reference`` runs the same code.)

The net runs one layer at a time (``net._forward(i, i)``) and every layer's tops
are copied right after it ran, so an in-place layer's output is recorded apart
from the layer before it. Caffe's own ``Split`` layers and the ``Input`` layers
are not recorded. The file layout is described in ``docs/reference_format.md``.

Input preprocessing (images), Caffe style: load RGB, resize (bilinear) to the
net's input size (or ``--resize H,W``, which reshapes the net), swap to BGR if
asked, subtract the per-channel mean (given in the net's channel order), multiply
by the scale, HWC -> CHW, add the batch axis.
"""
from __future__ import annotations

import argparse
import datetime
import json
import logging
import re
import sys

import numpy as np

FORMAT = "caffe-reference/1"
SAMPLE_THRESHOLD = 262144   # outputs with more elements are stored sampled
NUM_SAMPLES = 4096
SKIPPED_TYPES = ("Input",)  # never recorded (nor internal Split layers, see _is_internal_split)
DATA_TYPES = ("Input", "Data", "ImageData", "HDF5Data", "MemoryData", "DummyData", "WindowData")
_INTERNAL_SPLIT = re.compile(r"_\d+_split$")

log = logging.getLogger("caffe2tf.dump_reference")


class InputError(ValueError):
    """A bad ``--input`` or preprocessing option (one-line message)."""


# ----------------------------------------------------------------------------------------- inputs

def parse_floats(text, what):
    """``"104,117,123"`` -> [104.0, 117.0, 123.0] (None stays None)."""
    if text is None:
        return None
    try:
        return [float(v) for v in re.split(r"[,\s]+", str(text).strip()) if v]
    except ValueError:
        raise InputError(f"{what} '{text}' is not a comma-separated list of numbers") from None


def parse_size(text):
    """``"473,473"`` or ``"473x473"`` -> (473, 473)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[,x]\s*(\d+)\s*", str(text))
    if not m:
        raise InputError(f"--resize '{text}' is not H,W")
    return int(m.group(1)), int(m.group(2))


def random_input(shape, seed=0):
    """The ``random`` input: standard normal float32 (seeded, reproducible)."""
    return np.random.RandomState(seed).standard_normal(tuple(shape)).astype(np.float32)


def _load_rgb(path):
    try:
        from PIL import Image
    except ImportError:  # the old Caffe machine may lack Pillow but has caffe.io
        import caffe.io  # noqa: F401  (imported only on that machine)

        return np.asarray(caffe.io.load_image(path), dtype=np.float32) * 255.0
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.float32)
    except OSError as exc:
        raise InputError(f"cannot read image '{path}': {exc}") from None


def _resize(rgb, height, width):
    if rgb.shape[:2] == (height, width):
        return rgb
    from PIL import Image

    chans = [np.asarray(Image.fromarray(rgb[..., c]).resize((width, height), Image.BILINEAR))
             for c in range(rgb.shape[2])]
    return np.stack(chans, axis=-1).astype(np.float32)


def preprocess_image(rgb, shape, mean=None, scale=1.0, bgr=False):
    """``float [H, W, 3]`` RGB (0..255) -> ``float32 [N, C, H, W]`` net input of ``shape``.

    The image is resized to ``shape``'s H, W; ``mean`` is in the net's channel order
    (BGR when ``bgr``), one value per channel or one for all.
    """
    n, c, h, w = shape
    if c != 3:
        raise InputError(f"the net input has {c} channel(s); an image has 3 channels (give a .npy array)")
    x = _resize(np.asarray(rgb, dtype=np.float32), h, w)
    if bgr:
        x = x[..., ::-1]
    if mean is not None:
        if len(mean) not in (1, c):
            raise InputError(f"--mean has {len(mean)} values for {c} channels")
        x = x - np.asarray(mean, dtype=np.float32)
    x = x * np.float32(scale)
    chw = np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)
    return np.repeat(chw[None], n, axis=0)


def load_input(spec, shape, mean=None, scale=1.0, bgr=False, resize=None, seed=0):
    """One net input from ``spec``: ``random``, an ``.npy`` array, or an image file.

    Args:
        shape: the net's declared NCHW input shape.
        resize: (H, W) to feed instead of the declared size (images and random).
    Returns:
        float32 NCHW array (its shape may differ from ``shape`` with ``resize`` or
        an .npy of another size).
    """
    shape = tuple(int(d) for d in shape)
    if resize is not None:
        if len(shape) != 4:
            raise InputError(f"--resize needs a 4-D input, the net's is {list(shape)}")
        shape = shape[:2] + tuple(resize)
    if spec == "random":
        return random_input(shape, seed)
    path = str(spec)
    if path.lower().endswith(".npy"):
        if mean is not None or scale != 1.0 or bgr:
            raise InputError(f"--mean/--scale/--bgr apply to images; '{path}' is taken as the net input as is")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read array '{path}': {exc}") from None
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim == len(shape) - 1:
            arr = arr[None]
        if arr.ndim != len(shape):
            raise InputError(f"'{path}' has shape {list(arr.shape)}; the net input is {list(shape)}")
        return np.ascontiguousarray(arr)
    if len(shape) != 4:
        raise InputError(f"an image needs a 4-D (N,C,H,W) net input, the net's is {list(shape)}")
    return preprocess_image(_load_rgb(path), shape, mean=mean, scale=scale, bgr=bgr)


def assign_inputs(specs, input_names):
    """``["photo.jpg"]`` or ``["data=photo.jpg", "im_info=info.npy"]`` -> {blob: spec}.

    A single unnamed spec goes to the only input; missing inputs become ``random``.
    """
    out = {}
    for s in specs or ():
        name, sep, rest = str(s).partition("=")
        if sep and name in input_names:
            out[name] = rest
        elif len(input_names) == 1 and input_names[0] not in out:
            out[input_names[0]] = s
        else:
            raise InputError(f"--input '{s}': name the input as BLOB=FILE (inputs: {', '.join(input_names)})")
    for name in input_names:
        out.setdefault(name, "random")
    return out


# --------------------------------------------------------------------------------- capturing

def _is_internal_split(layer_type, name):
    return layer_type == "Split" and bool(_INTERNAL_SPLIT.search(name))


def feed_inputs(net, arrays):
    """Copy the input arrays into the net's blobs, reshaping the net where needed."""
    reshaped = False
    for blob, arr in arrays.items():
        if blob not in net.blobs:
            raise InputError(f"the net has no input blob '{blob}'")
        if tuple(net.blobs[blob].data.shape) != tuple(arr.shape):
            net.blobs[blob].reshape(*arr.shape)
            reshaped = True
    if reshaped:
        net.reshape()
    for blob, arr in arrays.items():
        net.blobs[blob].data[...] = arr


def capture_layers(net, arrays):
    """Run ``net`` one layer at a time on ``arrays`` (blob -> NCHW float32).

    Yields ``(name, type, bottoms, tops, outputs)`` for every recorded layer in
    execution order, ``outputs`` copied right after the layer ran.
    """
    feed_inputs(net, arrays)
    names = list(net._layer_names)
    for i, layer in enumerate(net.layers):
        name, layer_type = str(names[i]), str(layer.type)
        if layer_type in DATA_TYPES:
            continue  # inputs were fed above; a Data layer would read its database
        net._forward(i, i)
        if layer_type in SKIPPED_TYPES or _is_internal_split(layer_type, name):
            continue
        tops = [str(t) for t in net.top_names[name]]
        bottoms = [str(b) for b in net.bottom_names[name]]
        outputs = [np.array(net.blobs[t].data, dtype=np.float32, copy=True) for t in tops]
        yield name, layer_type, bottoms, tops, outputs


def open_net(caffe, prototxt, caffemodel):
    """``caffe.Net`` in the TEST phase on the CPU."""
    if hasattr(caffe, "set_mode_cpu"):
        caffe.set_mode_cpu()
    return caffe.Net(str(prototxt), str(caffemodel), caffe.TEST)


def net_input_shapes(net):
    """{input blob: declared shape} in the net's input order (a Data layer's first top too)."""
    blobs = [str(b) for b in net.inputs]
    names = list(net._layer_names)
    for i, layer in enumerate(net.layers):
        tops = list(net.top_names[str(names[i])])
        if str(layer.type) in DATA_TYPES and tops and str(tops[0]) not in blobs:
            blobs.append(str(tops[0]))
    return {b: tuple(int(d) for d in net.blobs[b].data.shape) for b in blobs}


# ----------------------------------------------------------------------------------- writing

def output_stats(a):
    """The statistics recorded for a sampled output (float64)."""
    a64 = np.asarray(a, dtype=np.float64)
    if a64.size == 0:
        return dict.fromkeys(("mean", "std", "min", "max", "abs_max", "l2"), 0.0)
    return {"mean": float(a64.mean()), "std": float(a64.std()), "min": float(a64.min()),
            "max": float(a64.max()), "abs_max": float(np.abs(a64).max()),
            "l2": float(np.sqrt(np.sum(a64 * a64)))}


def _write_output(group, key, array, rng, sample_threshold, num_samples):
    a = np.ascontiguousarray(array, dtype=np.float32)
    if a.size <= sample_threshold:
        group.create_dataset(key, data=a)
        return
    g = group.create_group(key)
    index = np.sort(rng.choice(a.size, size=min(num_samples, a.size), replace=False)).astype(np.int64)
    g.create_dataset("index", data=index)
    g.create_dataset("value", data=a.reshape(-1)[index])
    g.attrs["shape"] = np.asarray(a.shape, dtype=np.int64)
    for k, v in output_stats(a).items():
        g.attrs[k] = np.float64(v)
    if a.ndim == 4 and a.shape[1] > 1:
        g.create_dataset("argmax_axis1", data=np.argmax(a, axis=1).astype(np.int32))


def write_reference_file(path, case, inputs, layers, generator, sample_threshold=SAMPLE_THRESHOLD,
                         num_samples=NUM_SAMPLES, seed=0):
    """Write ``caffe-reference/1``; ``layers`` may be a generator (written as it runs).

    Returns the number of layers written.
    """
    import h5py

    rng = np.random.RandomState(seed)
    count = 0
    with h5py.File(str(path), "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["case"] = case
        f.attrs["generator"] = generator
        f.attrs["layout"] = "NCHW"
        f.attrs["created"] = datetime.date.today().isoformat()
        gi = f.create_group("inputs")
        for k, (blob, arr) in enumerate(inputs.items()):
            gi.create_dataset(str(k), data=np.asarray(arr, dtype=np.float32)).attrs["blob"] = blob
        gl = f.create_group("layers")
        for name, layer_type, bottoms, tops, outputs in layers:
            g = gl.create_group(f"{count:04d}")
            g.attrs["name"] = name
            g.attrs["type"] = layer_type
            g.attrs["bottoms"] = json.dumps(list(bottoms))
            g.attrs["tops"] = json.dumps(list(tops))
            for t, arr in enumerate(outputs):
                _write_output(g, f"top{t}", arr, rng, sample_threshold, num_samples)
            count += 1
        f.attrs["num_layers"] = np.int64(count)
    return count


def import_caffe():
    """``import caffe`` (quiet); raises ImportError with a hint if it is missing."""
    try:
        import caffe
    except ImportError as exc:
        raise ImportError(f"pycaffe is not importable ({exc}); run this where Caffe is installed "
                          "and its python/ directory is on PYTHONPATH") from None
    return caffe


def dump_reference(prototxt, caffemodel, out, inputs=(), mean=None, scale=1.0, bgr=False, resize=None,
                   seed=0, full=False, caffe=None):
    """Run Caffe on the inputs and write every layer's outputs to ``out``.

    Args:
        inputs: ``--input`` specs (``random``, ``x.npy``, an image, or ``BLOB=...``).
        mean / resize: as parsed by :func:`parse_floats` / :func:`parse_size`.
        full: store every output in full (no sampling; large files).
        caffe: the pycaffe module (imported when ``None``).
    Returns:
        the number of layers recorded.
    """
    caffe = caffe or import_caffe()
    net = open_net(caffe, prototxt, caffemodel)
    shapes = net_input_shapes(net)
    specs = assign_inputs(inputs, list(shapes))
    arrays = {b: load_input(specs[b], shapes[b], mean=mean, scale=scale, bgr=bgr, resize=resize, seed=seed)
              for b in shapes}
    case = re.sub(r"\.prototxt$", "", str(prototxt).replace("\\", "/").rsplit("/", 1)[-1])
    version = getattr(caffe, "__version__", "")
    n = write_reference_file(out, case, arrays, capture_layers(net, arrays),
                             generator=f"pycaffe {version} via caffe2tf dump-reference".replace("  ", " "),
                             sample_threshold=(1 << 62) if full else SAMPLE_THRESHOLD)
    log.info("recorded %d layers to %s", n, out)
    return n


def build_arg_parser():
    p = argparse.ArgumentParser(prog="dump_reference.py", description=__doc__.split("\n\n")[0])
    p.add_argument("prototxt")
    p.add_argument("caffemodel")
    p.add_argument("-o", "--output", default="reference.h5", help="the .h5 to write (default reference.h5)")
    p.add_argument("--input", action="append", default=[],
                   help="random | ARRAY.npy | IMAGE, or BLOB=... for nets with several inputs (repeatable)")
    p.add_argument("--mean", help="per-channel mean in the net's channel order, e.g. 103.939,116.779,123.68")
    p.add_argument("--scale", type=float, default=1.0, help="multiply after subtracting the mean")
    p.add_argument("--bgr", action="store_true", help="swap the image's RGB to BGR")
    p.add_argument("--resize", help="H,W to resize images to (reshapes the net)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input")
    p.add_argument("--full", action="store_true", help="store every output in full (no sampling)")
    return p


def main(argv=None):
    args = build_arg_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        n = dump_reference(args.prototxt, args.caffemodel, args.output, inputs=args.input,
                           mean=parse_floats(args.mean, "--mean"), scale=args.scale, bgr=args.bgr,
                           resize=parse_size(args.resize), seed=args.seed, full=args.full)
    except (InputError, ImportError) as exc:
        sys.stderr.write(f"dump_reference: error: {exc}\n")
        return 2
    print(f"wrote {n} layers to {args.output}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
