"""A trained model back from its file, and its predictions on images.

    model = minidl_models.load("runs/latest/model.npz")      # built, weights loaded, in eval mode
    for label, p in minidl_models.predict(model, image)[0]:  # image: uint8 (C, H, W) or (H, W)
        print(label, p)

``minidl train`` writes into model.npz what rebuilds the model (its name and arguments) and what
prepares an image for it: the shape and dtype of the dataset's images, the test transform that
turns them into the network's input (padding or resizing, scaling, normalisation) and the class
names. ``minidl predict`` is `load` and `predict` on image files.
"""
import os

import numpy as np

import minidl as mdl
from minidl.data import transforms
from minidl.training import CheckpointError, check_config


def read_run_file(path):
    """The model file or checkpoint at ``path`` and its config, held to `minidl.training.check_config`;
    CheckpointError if it is not one of ``minidl train``'s files."""
    state = mdl.load(path)
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise CheckpointError(f"{path} is not a minidl run file: it has no config and model (minidl train writes "
                              "them into model.npz and checkpoints/)")
    check_config(state["config"], path)
    return state, state["config"]


def build_model(config, where):
    """The model ``config`` names, as ``minidl train`` builds it; CheckpointError naming ``where`` if
    its arguments do not fit."""
    from minidl_models import get_model

    try:
        return get_model(config["model"], **config["model_kwargs"])
    except TypeError as e:
        raise CheckpointError(f"{where}: the config's model_kwargs {config['model_kwargs']!r} do not fit "
                              f"{config['model']} ({e})") from None


def load(path, device="cpu"):
    """The model saved at ``path`` (a model.npz or a checkpoint of ``minidl train``), on ``device``
    and in eval mode, with ``run_config`` (the run's config) and the attributes `predict` uses: ``preprocess`` (a transform from the
    dataset's images to the network's input, None where the file has none), ``classes`` (the class
    names, or None) and ``image_shape`` (the (C, H, W) of the images ``preprocess`` takes, or None).
    A file that is not one, or whose weights do not fit its model, raises CheckpointError."""
    state, config = read_run_file(os.fspath(path))
    model = build_model(config, path)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the weights in {path} do not fit the {config['model']} its config builds: "
                              f"{e}") from None
    try:
        model.preprocess = transforms.from_spec(state["preprocess"]) if "preprocess" in state else None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its preprocessing cannot be rebuilt ({e})") from None
    model.run_config = config
    model.classes = [str(c) for c in state["classes"]] if "classes" in state else None
    model.image_shape = tuple(state["image_shape"]) if "image_shape" in state else None
    return model.to(device).eval()


def predict(model, images, topk=5):
    """The ``topk`` most likely classes of each image, most likely first: one list of
    ``(class name, probability)`` per image.

    ``images`` is one image or a batch, as the dataset's images are: uint8 (C, H, W) or (N, C, H, W);
    (H, W) and (N, H, W) for one channel. ``model.preprocess`` (see `load`) prepares them; a model
    without it takes ``images`` as its input as they are."""
    if not (isinstance(topk, int) and topk >= 1):
        raise ValueError(f"predict: topk must be an int >= 1; got {topk!r}")
    x = np.asarray(images.numpy() if isinstance(images, mdl.Tensor) else images)
    expected = getattr(model, "image_shape", None)
    if expected is not None and x.ndim == len(expected) - 1 and expected[0] == 1:
        x = x[..., None, :, :] if x.ndim == 2 else x[:, None]
    single = x.ndim == 3
    batch = x[None] if single else x
    if batch.ndim != 4 or (expected is not None and tuple(batch.shape[1:]) != tuple(expected)):
        want = f"{tuple(expected)} (C, H, W)" if expected is not None else "(C, H, W)"
        raise ValueError(f"predict: expected images of shape {want} or a batch of them; got shape {x.shape}")
    preprocess = getattr(model, "preprocess", None)
    if preprocess is not None:
        batch = preprocess(batch)
    classes = getattr(model, "classes", None)
    with mdl.no_grad():
        probabilities = mdl.nn.functional.softmax(model(mdl.tensor(batch).to(model_device(model))), axis=1).numpy()
    k = min(topk, probabilities.shape[1])
    best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(classes[c] if classes else str(c), float(p[c])) for c in row] for p, row in zip(probabilities, best)]


def model_device(model):
    """The device of ``model``'s first parameter ('cpu' for a model without parameters)."""
    first = next(iter(model.parameters()), None)
    return "cpu" if first is None else first.device


def read_image(path, shape):
    """The image file at ``path`` as the dataset's images are: uint8 (C, H, W) of ``shape``.

    ``.npy``: an array of exactly that shape ((H, W) for one channel too), read without pickle.
    Other files (PNG, JPEG, ...) need Pillow: converted to grayscale for one channel or RGB for
    three, and resized to (H, W) with bilinear filtering."""
    c, h, w = shape
    if str(path).lower().endswith(".npy"):
        a = np.load(path, allow_pickle=False)
        if a.ndim == 2 and c == 1:
            a = a[None]
        if a.shape != (c, h, w):
            raise ValueError(f"{path}: expected an array of shape {(c, h, w)} (or {(h, w)} for one channel); "
                             f"got {a.shape}")
        if a.dtype != np.uint8:
            raise ValueError(f"{path}: expected uint8 pixels (0-255), as the dataset's images are; got {a.dtype}")
        return a
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"reading {path} needs Pillow: `pip install pillow` (or give the image as a .npy "
                          "array)") from None
    if c not in (1, 3):
        raise ValueError(f"{path}: the model takes {c}-channel images; image files give 1 (grayscale) or 3 (RGB)")
    try:
        with Image.open(path) as image:
            image = image.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
    except OSError as e:  # Pillow's UnidentifiedImageError among them
        raise ValueError(f"{path}: not an image file Pillow can read ({e})") from None
    a = np.asarray(image, dtype=np.uint8)
    return a[None] if c == 1 else a.transpose(2, 0, 1).copy()
