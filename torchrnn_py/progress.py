"""A single updating progress line on stderr, for the long steps of the commands.

Library functions take a plain ``progress(done, total)`` callback; the commands pass
``ProgressLine(...).update``. The line is drawn only on a terminal (and not with
``--quiet``), at most a few times a second, and cleared when the work ends, so logs and
pipes never see it.
"""
import sys
import time


def _human(n, unit):
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.1f} {prefix}{unit}"
    return f"{n:.0f} {unit}"


class ProgressLine:
    """``label: 42% 1.2 MB / 3.0 MB, 5.1 MB/s, 0:01 left`` redrawn in place on ``stream``.

    ``enabled``: None = only when ``stream`` is a terminal. ``unit``: what is counted.
    """

    def __init__(self, label, unit="B", stream=None, enabled=None, interval=0.2):
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = enabled
        self.label, self.unit, self.interval = label, unit, interval
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.drawn = False

    def update(self, done, total=None):
        """Record progress; redraws if enough time has passed since the last draw."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last_draw < self.interval and not (total and done >= total):
            return
        self.last_draw = now
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        parts = [f"{self.label}:"]
        if total:
            parts.append(f"{100.0 * done / total:3.0f}%")
            parts.append(f"{_human(done, self.unit)} / {_human(total, self.unit)},")
        else:
            parts.append(f"{_human(done, self.unit)},")
        parts.append(f"{_human(rate, self.unit)}/s")
        if total and rate > 0 and done < total:
            left = int((total - done) / rate)
            parts.append(f", {left // 60}:{left % 60:02d} left")
        self.stream.write("\r" + " ".join(parts).replace(" ,", ",") + "\033[K")
        self.stream.flush()
        self.drawn = True

    def close(self):
        """Erase the line (the command's own output follows on a clean line)."""
        if self.enabled and self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
