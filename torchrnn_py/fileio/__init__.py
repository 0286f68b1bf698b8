"""Small file helpers shared by every stage: clear input errors and atomic outputs.

Inputs read whole must be regular files (or symlinks to one): a device or a FIFO is refused
before it is opened (opening a FIFO blocks; /dev/zero never ends). Outputs go through
:class:`OutputGroup`; see it for devices, FIFOs, symlinks, permissions and stale temp files.

Modules: :mod:`.inputs` (input checks and reads, JSON, error texts), :mod:`.outputs`
(output checks, :class:`OutputGroup` and the atomic outputs), :mod:`.temps` (stale temporary
files); every name below is re-exported here, so ``from torchrnn_py.fileio import ...`` is the
way in.
"""
from .inputs import (check_file_name, check_input_file, describe_os_error, file_kind,
                     parse_json, read_input_bytes, read_input_chunks, utf8_error)
from .outputs import (OutputGroup, atomic_output, atomic_outputs, atomic_path, check_distinct,
                      check_name_stem, check_output_path, check_stdout_distinct)
from .temps import ABANDONED_TEMP_SECONDS, STALE_TEMP_SECONDS, _temp_pattern, remove_stale_temps
