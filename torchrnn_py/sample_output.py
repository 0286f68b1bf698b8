"""Where samples go: stdout, files (written atomically, or streamed), and the spools that
keep samples 2..K until sample 1 is on stdout; each failed write is one line naming where
it was going. Shared by torchrnn-sample (torchrnn_py/sample/) and torchrnn-charrnn-sample
(torchrnn_py/charrnn/sample_lua.py)."""
import contextlib
import sys
import tempfile

from .errors import TorchRNNError
from .fileio import atomic_output

FLUSH_EVERY = 4096          # tokens buffered between writes when not streaming


def write_samples(steps, token_bytes, sinks_context, opt, progress):
    """Write the samples through the sinks; returns how many tokens had no bytes."""
    K = int(opt["num_samples"])
    with sinks_context as sinks:
        buffered = done = dropped = 0
        for ids in steps:
            for k, token in enumerate(ids.tolist()):
                piece = token_bytes[token]
                dropped += not piece
                sinks[k].append(piece)
            buffered += 1
            if opt["stream"] or buffered >= FLUSH_EVERY:
                for sink in sinks:
                    sink.flush()
                done += buffered
                buffered = 0
                if progress is not None:
                    progress(done * K, int(opt["length"]) * K)
    return dropped


class _Sink:
    """Collects one sample's bytes and writes them out in chunks; a failed write (a full
    disk) names where it was going."""

    def __init__(self, file, name):
        self.file, self.name, self.pieces = file, name, []

    def append(self, data):
        self.pieces.append(data)

    def flush(self):
        if self.pieces:
            data, self.pieces = b"".join(self.pieces), []
            self.write(data)
        with self.failures():
            self.file.flush()

    def write(self, data):
        with self.failures():
            self.file.write(data)

    @contextlib.contextmanager
    def failures(self):
        try:
            yield
        except BrokenPipeError:          # the reader went away: run_main stops quietly
            raise
        except OSError as err:
            raise TorchRNNError(f"{self.name}: cannot write the sample: "
                                f"{err.strerror or err}") from None


@contextlib.contextmanager
def sample_sinks(paths, out, K, stream, newline):
    """One sink per sample: files (atomic unless streaming), or ``out`` for the first and
    spooled temporary files for the others, copied to ``out`` in order at the end, each
    after a ``--- sample k of K ---`` line when K > 1."""
    with contextlib.ExitStack() as stack:
        if paths:
            files = [stack.enter_context(_streamed_file(p)) if stream
                     else stack.enter_context(atomic_output(p, "wb", what="sample file"))
                     for p in paths]
            sinks = [_Sink(f, p) for f, p in zip(files, paths)]
        else:
            spool = _Spool(stack.enter_context(tempfile.TemporaryFile())) if K > 1 else None
            sinks = [_Sink(out, "stdout" if out is sys.stdout.buffer else "output stream")]
            sinks += [_SpooledSink(spool, k) for k in range(2, K + 1)]
            if K > 1:
                sinks[0].write(sample_separator(1, K))
        yield sinks
        for sink in sinks:
            sink.flush()
        if not paths:
            _copy_spools(sinks[0], spool, K, newline)


@contextlib.contextmanager
def _streamed_file(path):
    """``open(path, 'wb')`` (-stream 1 writes the file itself), whose failure to close (the
    last bytes on a full disk) is named like the other write errors."""
    file = open(path, "wb")
    try:
        yield file
    finally:
        try:
            file.close()
        except OSError as err:
            raise TorchRNNError(f"{path}: cannot write the sample: "
                                f"{err.strerror or err}") from None


def sample_separator(k, K):
    """The line before sample k of K on stdout when K > 1 (documented in docs/migration.md)."""
    return f"--- sample {k} of {K} ---\n".encode("ascii")


def _copy_spools(target, spool, K, newline):
    """After the first sample (already in ``target``), its newline and the others in turn."""
    if newline:
        target.write(b"\n")
    for k in range(2, K + 1):
        target.write(sample_separator(k, K))
        for chunk in spool.chunks(k):
            target.write(chunk)
        if newline:
            target.write(b"\n")
    target.flush()


class _Spool:
    """Samples 2..K, kept in one temporary file until sample 1 is on stdout (one file
    whatever K is: a file each ran out of descriptors at about a thousand samples). Each
    sample's chunks are appended as they come; where each lies is remembered."""

    def __init__(self, file):
        self.file, self.end, self.where = file, 0, {}

    def append(self, k, data):
        self.file.write(data)
        self.where.setdefault(k, []).append((self.end, len(data)))
        self.end += len(data)

    def chunks(self, k, most=1 << 20):
        """Sample k's bytes in order, at most ``most`` at a time."""
        for offset, size in self.where.get(k, ()):
            self.file.seek(offset)
            while size > 0:
                chunk = self.file.read(min(size, most))
                if not chunk:
                    raise TorchRNNError(f"temporary file in {tempfile.gettempdir()} for "
                                        f"sample {k}: it was cut short while sampling")
                size -= len(chunk)
                yield chunk
        self.file.seek(0, 2)                        # back to the end, for appends


class _SpooledSink(_Sink):
    """Sample k's sink into the shared :class:`_Spool`."""

    def __init__(self, spool, k):
        super().__init__(spool.file, f"temporary file in {tempfile.gettempdir()} for sample {k}")
        self.spool, self.k = spool, k

    def write(self, data):
        with self.failures():
            self.spool.append(self.k, data)
