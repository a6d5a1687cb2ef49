"""Keras's progress bar, readable in a terminal, a log file and Jupyter.

Terminal and Jupyter: one line redrawn in place with a carriage return (Jupyter
renders `\\r` and ANSI colours too), throttled to one redraw per `interval`.
Anything else (a file, a pipe): no control characters at all; the final line
of each epoch, plus a plain progress line at most every `static_interval`
seconds (STATIC_INTERVAL, 5 s) so a long epoch still shows signs of life in a
log. Each line is Keras's line less its colour codes. (Keras's own Progbar
treats every POSIX stream as a terminal and writes `\b...\r` redraws every
0.05 s into a file; elsewhere it writes a new line every 0.05 s.) A target of
None (a stream of unknown length) shows `      7/Unknown` and the elapsed time,
as Keras.
"""
import math
import sys
import time

STATIC_INTERVAL = 5.0  # seconds between progress lines in a file or pipe

def _is_interactive(stream):
    if "ipykernel" in sys.modules and type(stream).__module__.startswith("ipykernel"):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # closed stream
        return False


def format_time(seconds_per_unit, unit="step"):
    """' 12ms/step' as Keras writes it."""
    if seconds_per_unit >= 1 or seconds_per_unit == 0:
        return f" {seconds_per_unit:.0f}s/{unit}"
    if seconds_per_unit >= 1e-3:
        return f" {seconds_per_unit * 1e3:.0f}ms/{unit}"
    return f" {seconds_per_unit * 1e6:.0f}us/{unit}"


def format_value(v):
    v = float(v)
    return f"{v:.4f}" if abs(v) > 1e-3 else f"{v:.4e}"


class Progbar:
    """Progress bar: `update(current, [(name, value), ...])`; the values are shown as given.

    Example
    -------
    >>> import io
    >>> from neuraxis._keras.progbar import Progbar
    >>> out = io.StringIO(); bar = Progbar(4, stream=out)
    >>> bar.update(4, [("loss", 0.5)]); out.getvalue().startswith("4/4 ━━━━━━━━━━━━━━━━━━━━ 0s")
    True
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, unit_name="step",
                 stream=None, static_interval=None):
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self.static_interval = STATIC_INTERVAL if static_interval is None else static_interval
        self._stream = stream
        self.interactive = _is_interactive(self.stream)
        self._start = time.time()
        self._last_update = 0.0
        self._last_static = self._start
        self._after_first = None
        self._prev_width = 0
        self._values = []
        self.open_line = False  # a redrawn line is on screen without its newline yet

    @property
    def stream(self):
        # Looked up at write time so redirection (pytest's capsys, contextlib) is honoured.
        return self._stream if self._stream is not None else sys.stdout

    def _step_time(self, current, now):
        # The first step (compilation, warm-up caches) is left out of the estimate, as in Keras.
        if not current:
            return 0.0
        if self._after_first is not None and current > 1:
            per = (now - self._after_first) / (current - 1)
        else:
            per = (now - self._start) / current
        if current == 1:
            self._after_first = now
        return per

    def update(self, current, values=None, finalize=None):
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        if values is not None:
            self._values = list(values)
        now = time.time()
        per = self._step_time(current, now)
        if self.verbose == 2:
            if finalize and self.target:
                self._write(self._line_v2(current, now, per) + "\n")
            return
        if self.verbose != 1:
            return
        if self.interactive:
            if not finalize and now - self._last_update < self.interval:
                return
            text, width = self._line(current, now, per, finalize, color=True)
            pad = " " * max(self._prev_width - width, 0)
            self._write("\r" + text + pad + ("\n" if finalize else ""))
            self._prev_width = width
            self.open_line = not finalize
        elif finalize or now - self._last_static >= self.static_interval:
            self._write(self._line(current, now, per, finalize, color=False)[0] + "\n")
            self._last_static = now
        self._last_update = now

    def close_line(self):
        """End a line left open by an interrupted run."""
        if self.open_line:
            self._write("\n")
            self.open_line = False

    def _write(self, text):
        s = self.stream
        s.write(text)
        try:
            s.flush()
        except (AttributeError, ValueError, OSError):
            pass

    def _line(self, current, now, per, finalize, color):
        if not self.target:  # unknown length: Keras's "%7d/Unknown", no bar, elapsed time
            count = "%7d/Unknown" % current
            clock = f"{now - self._start:.0f}s"
            tail = format_time(per, self.unit_name)
            tail += "".join(f" - {k}: {format_value(v)}" for k, v in self._values)
            plain = f"{count} {clock}{tail}"
            if not color:
                return plain, len(plain)
            return f"{count} \x1b[1m{clock}\x1b[0m{tail}", len(plain)
        digits = int(math.log10(self.target)) + 1
        count = f"{current:>{digits}}/{self.target}"
        done = min(int(self.width * current / self.target), self.width)
        if finalize:
            clock = f"{now - self._start:.0f}s"
        else:
            eta = per * (self.target - current)
            if eta > 3600:
                clock = "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
            elif eta > 60:
                clock = "%d:%02d" % (eta // 60, eta % 60)
            else:
                clock = "%ds" % eta
        tail = format_time(per, self.unit_name)
        tail += "".join(f" - {k}: {format_value(v)}" for k, v in self._values)
        plain = f"{count} {'━' * self.width} {clock}{tail}"
        if not color:
            return plain, len(plain)
        bar = (f"\x1b[32m{'━' * done}\x1b[0m" if done else "") + \
              f"\x1b[37m{'━' * (self.width - done)}\x1b[0m"
        return f"\x1b[1m{count}\x1b[0m {bar} \x1b[1m{clock}\x1b[0m{tail}", len(plain)

    def _line_v2(self, current, now, per):
        digits = int(math.log10(self.target)) + 1
        line = f"{current:>{digits}}/{self.target} - {now - self._start:.0f}s -"
        line += format_time(per, self.unit_name)
        return line + "".join(f" - {k}: {format_value(v)}" for k, v in self._values)
