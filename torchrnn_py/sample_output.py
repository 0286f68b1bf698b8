"""Where samples go: stdout, files (written atomically, or streamed), and the spools that
keep samples 2..K until sample 1 is on stdout; each failed write is one line naming where
it was going. Shared by torchrnn-sample (torchrnn_py/sample/) and torchrnn-charrnn-sample
(torchrnn_py/charrnn/sample_lua.py)."""
import array
import contextlib
import os
import sys
import tempfile

try:
    import resource
except ImportError:         # not a Unix: no open-file limit to ask
    resource = None

from .errors import TorchRNNError
from .fileio import atomic_output

FLUSH_EVERY = 4096          # tokens buffered between writes when not streaming
DESCRIPTOR_MARGIN = 32      # descriptors left to the libraries (torch, h5py) and the spool


def check_files_open(paths):
    """Refuse, before any is opened, more sample files than may be open at once: the
    sinks hold each open until the end (``ulimit -n`` less the descriptors in use, less a
    margin)."""
    soft, in_use = _descriptor_limits()
    if soft is None or len(paths) + in_use + DESCRIPTOR_MARGIN <= soft:
        return
    raise TorchRNNError(
        f"-num_samples {len(paths)} with -output_file keeps {len(paths)} files open at once, "
        f"more than the open-file limit allows (ulimit -n {soft}, {in_use} already open); "
        f"raise it (ulimit -n {len(paths) + in_use + DESCRIPTOR_MARGIN}) or sample fewer at "
        f"a time")


def _descriptor_limits():
    """(soft RLIMIT_NOFILE, descriptors open now); (None, 0) where either is not known."""
    if resource is None:
        return None, 0
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            in_use = len(os.listdir(directory)) - 1      # less listdir's own
        except OSError:
            continue
        return (None if soft == resource.RLIM_INFINITY else soft), in_use
    return None, 0


def write_samples(steps, token_bytes, sinks_context, opt, progress):
    """Write the samples through the sinks; returns how many tokens had no bytes. Every
    sink is flushed each FLUSH_EVERY tokens; with -stream the ones someone can watch (stdout,
    the files) after every token too, not the spooled samples 2..K, so that the spool keeps
    one entry per FLUSH_EVERY tokens, not one per token."""
    K, length = int(opt["num_samples"]), int(opt["length"])
    with sinks_context as sinks:
        live = [sink for sink in sinks if sink.live] if opt["stream"] else []
        made = dropped = 0
        for ids in steps:
            for k, token in enumerate(ids.tolist()):
                piece = token_bytes[token]
                dropped += not piece
                sinks[k].append(piece)
            made += 1
            if made % FLUSH_EVERY and not live:
                continue
            for sink in sinks if made % FLUSH_EVERY == 0 else live:
                sink.flush()
            if progress is not None:
                progress(made * K, length * K)
    return dropped


class _Sink:
    """Collects one sample's bytes and writes them out in chunks; a failed write (a full
    disk) names where it was going."""

    live = True                 # seen as it is written (stdout, a file): -stream flushes it

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
            spool = stack.enter_context(_temporary_spool()) if K > 1 else None
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
def _temporary_spool():
    """A :class:`_Spool` in a new temporary file, closed at the end without a word: what
    it held is copied out or not wanted, and a write that failed (a full TMPDIR) has been
    named already, which closing (it flushes the rest again) would replace."""
    file = tempfile.TemporaryFile()
    try:
        yield _Spool(file)
    finally:
        with contextlib.suppress(OSError):
            file.close()


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
    sample's chunks are appended as they come; where each lies is remembered, as 16 bytes
    (offset, size) per chunk, one chunk per FLUSH_EVERY tokens (see :func:`write_samples`)."""

    def __init__(self, file):
        self.file, self.end, self.where = file, 0, {}

    def append(self, k, data):
        self.file.write(data)
        self.where.setdefault(k, array.array("q")).extend((self.end, len(data)))
        self.end += len(data)

    def chunks(self, k, most=1 << 20):
        """Sample k's bytes in order, at most ``most`` at a time."""
        where = self.where.get(k, ())
        for i in range(0, len(where), 2):
            offset, size = where[i], where[i + 1]
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

    live = False                # nobody sees it before the end

    def __init__(self, spool, k):
        super().__init__(spool.file, f"temporary file in {tempfile.gettempdir()} for sample {k}")
        self.spool, self.k = spool, k

    def write(self, data):
        with self.failures():
            self.spool.append(self.k, data)
