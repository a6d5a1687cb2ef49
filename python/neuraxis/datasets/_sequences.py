"""The word-index sequences' processing shared by IMDB and Reuters, as Keras does it.

Its quirks are Keras's and kept on purpose, so the same arguments give the same data:
`maxlen` keeps sequences *shorter* than maxlen (with their start character); without
`num_words` the limit is the largest index seen, which is then itself out of range and
becomes `oov_char` (or is dropped)."""
import json

from ._files import get_file, unreadable


def shift(xs, start_char, index_from):
    """Add `index_from` to each word, put `start_char` first (when not None)."""
    if start_char is not None:
        return [[start_char] + [w + index_from for w in x] for x in xs]
    if index_from:
        return [[w + index_from for w in x] for x in xs]
    return [[w for w in x] for x in xs]


def remove_long(maxlen, xs, labels):
    """Keep the pairs whose sequence is shorter than `maxlen`."""
    kept = [(x, y) for x, y in zip(xs, labels) if len(x) < maxlen]
    return [x for x, _ in kept], [y for _, y in kept]


def limit(xs, num_words, skip_top, oov_char):
    """Words outside [skip_top, num_words) become `oov_char`, or are dropped when it is None."""
    if not num_words:
        num_words = max(max(x) for x in xs)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def word_index(fname, origin, file_hash):
    """A `{word: index}` dict from a cached (or downloaded) JSON file."""
    path = get_file(fname, origin=origin, file_hash=file_hash)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise unreadable(path, e) from e
