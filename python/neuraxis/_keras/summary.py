"""`model.summary()`: Keras 3's table, character for character, without needing `rich`.

Keras renders with rich: fixed column widths from `positions`, a table width of
`line_length`, and rich then shaves the 6 padding characters and 4 borders off
the columns (a "ratio reduce" with Python's rounding). The same arithmetic here
gives the same text at every width.
"""
import shutil
import sys


def _ratio_reduce(total, widths):
    # rich._ratio.ratio_reduce with all ratios 1 and maximums = widths.
    out, remaining, ratio = [], total, len(widths)
    for w in widths:
        d = min(w, round(remaining / ratio))
        out.append(w - d)
        remaining -= d
        ratio -= 1
    return out


def _wrap(text, width):
    """Word-wrap like rich's Text.wrap (overflow 'ellipsis'): words kept whole, long lines cut."""
    lines, line = [], ""
    for word in text.split(" "):
        cand = word if not line else line + " " + word
        if len(cand) <= width or not line:
            line = cand
        else:
            lines.append(line)
            line = word
    lines.append(line)
    return [ln if len(ln) <= width else ln[:width - 1] + "…" for ln in lines]


def _row(cells, widths, aligns, bar):
    wrapped = [_wrap(c, w - 2) for c, w in zip(cells, widths)]
    height = max(len(w) for w in wrapped)
    out = []
    for i in range(height):
        parts = []
        for lines, w, a in zip(wrapped, widths, aligns):
            t = lines[i] if i < len(lines) else ""
            if a == "right":
                t = t.rjust(w - 2)
            elif a == "center":  # rich: the odd space goes to the right
                left = (w - 2 - len(t)) // 2
                t = " " * left + t.ljust(w - 2 - left)
            else:
                t = t.ljust(w - 2)
            parts.append(" " + t + " ")
        out.append(bar + bar.join(parts) + bar)
    return out


def table(header, rows, line_length, positions, aligns):
    """The rich HEAVY_HEAD table Keras prints, as a list of lines."""
    widths, current = [], 0
    for pos in positions:
        w = int(pos * line_length) - current if pos <= 1 else int(pos) - current
        if w < 4:
            raise ValueError("Insufficient console width to print summary.")
        widths.append(w)
        current += w
    # Each column is w + 2 padding; the table must fit line_length - borders.
    padded = [w + 2 for w in widths]
    excess = sum(padded) - (line_length - (len(widths) + 1))
    if excess > 0:
        padded = _ratio_reduce(excess, padded)
    h = ["━" * w for w in padded]
    s = ["─" * w for w in padded]
    lines = ["┏" + "┳".join(h) + "┓"]
    lines += _row(header, padded, aligns, "┃")
    lines.append("┡" + "╇".join(h) + "┩")
    for i, r in enumerate(rows):
        if i:
            lines.append("├" + "┼".join(s) + "┤")
        lines += _row(r, padded, aligns, "│")
    lines.append("└" + "┴".join(s) + "┘")
    return lines


def readable_size(nbytes):
    """'9.39 KB' with Keras's 1024 scale and units."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if nbytes / 1024 < 1:
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} PB"


def _shape(layer):
    if not layer.built or layer.output_shape is None:
        return "?"
    return "(" + ", ".join(str(d) for d in layer.output_shape) + ")"


def print_summary(model, line_length=None, positions=None, print_fn=None, show_trainable=False,
                  layer_range=None):
    header = ["Layer (type)", "Output Shape", "Param #"]
    aligns = ["left", "left", "right"]
    positions = list(positions or [0.45, 0.80, 1.0])
    default = 88
    if show_trainable:
        default += 12
        positions = [p * 0.90 for p in positions] + [1.0]
        header.append("Trainable")
        aligns.append("center")
    line_length = line_length or min(default, shutil.get_terminal_size().columns - 4)
    layers = model.layers
    if layer_range is not None:
        import re
        names = [la.name for la in layers]
        lo = [i for i, nm in enumerate(names) if re.match(layer_range[0], nm)]
        hi = [i for i, nm in enumerate(names) if re.match(layer_range[1], nm)]
        if not lo or not hi:
            raise ValueError("Passed layer_names do not match the layer names in the model. "
                             f"Received: {layer_range}")
        layers = layers[min(lo):max(hi) + 1]
    rows = []
    for layer in layers:
        params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
        row = [f"{layer.name} ({type(layer).__name__})", _shape(layer), params]
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        rows.append(row)
    lines = table(header, rows, line_length, positions, aligns)
    trainable = sum(w.size for w in model.trainable_weights)
    frozen = sum(w.size for w in model.non_trainable_weights)
    opt = model.optimizer
    opt_count = (sum(int(v.size) for v in opt.variables)
                 if model.compiled and opt is not None and opt.built else None)
    total = trainable + frozen + (opt_count or 0)
    bold = sys.stdout.isatty() and print_fn is None

    def label(t):
        return f"\x1b[1m{t}\x1b[0m" if bold else t

    out = [label(f'Model: "{model.name}"')] + lines
    out.append(label(" Total params: ") + f"{total:,} ({readable_size(total * 4)})")
    out.append(label(" Trainable params: ") + f"{trainable:,} ({readable_size(trainable * 4)})")
    out.append(label(" Non-trainable params: ") + f"{frozen:,} ({readable_size(frozen * 4)})")
    if opt_count is not None:
        out.append(label(" Optimizer params: ") + f"{opt_count:,} "
                   f"({readable_size(opt_count * 4)})")
    text = "\n".join(out) + "\n"
    if print_fn is not None:
        print_fn(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
