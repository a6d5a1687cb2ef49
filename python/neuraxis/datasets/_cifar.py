"""Reading CIFAR's "python version" batches: pickled dicts of a uint8 (n, 3072) array and
a label list. Read with `_files.RestrictedUnpickler` (only NumPy's array globals), as Keras
3.15 does; the archive itself comes from a fixed origin and its SHA-256 is checked."""
import os
import pickle

import numpy as np

from ._files import RestrictedUnpickler, unreadable


def load_batch(fpath, label_key="labels"):
    """`(data, labels)`: data uint8 (n, 3, 32, 32) channels first, labels a list of ints."""
    try:
        with open(fpath, "rb") as f:
            # the batches were pickled by Python 2: str keys come back as bytes
            d = RestrictedUnpickler(f, encoding="bytes").load()
        d = {k.decode("utf8"): v for k, v in d.items()}
        data, labels = d["data"], d[label_key]
        data = data.reshape(data.shape[0], 3, 32, 32)
    except FileNotFoundError as e:
        raise ValueError(f"The CIFAR batch {fpath!r} is missing from the extracted archive; "
                         f"delete {os.path.dirname(os.path.dirname(fpath))!r} and its "
                         "'_archive' file and call load_data() again.") from e
    except (OSError, EOFError, ValueError, KeyError, AttributeError,
            pickle.UnpicklingError) as e:
        raise unreadable(fpath, e) from e
    return data, labels
