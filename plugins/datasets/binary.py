"""Binary dataset files judged by their headers and sizes before a reader trusts them.

torchvision's readers read a whole file, then shape it as its header says: a
file that is not a regular file (``/dev/zero`` under a dataset's name) is read
without end, and a header that claims more than the file holds fails late or
vaguely. These checks read a few header bytes and one ``stat``, so a bad file
is refused in one line naming it, what it claims and what it is, before any
reader allocates anything. No torch here: functions of bytes and of a path's stat and first bytes.

The IDX format (MNIST's; yann.lecun.com/exdb/mnist): a 4-byte magic number
``0x00 0x00 TYPE NDIM``, then NDIM big-endian uint32 dimensions, then the
product of the dimensions times the type's size in bytes, and nothing else.
"""

from __future__ import annotations

import math
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from ganlab.config import file_kind

#: IDX type code -> (what one element is, its size in bytes)
IDX_TYPES: dict[int, tuple[str, int]] = {
    0x08: ("unsigned byte", 1), 0x09: ("signed byte", 1), 0x0B: ("short", 2),
    0x0C: ("int", 4), 0x0D: ("float", 4), 0x0E: ("double", 8),
}
#: the only type torchvision's MNIST readers accept, for images and labels alike
UBYTE = 0x08


@dataclass(frozen=True)
class IdxHeader:
    type_code: int
    dims: tuple[int, ...]

    @property
    def header_bytes(self) -> int:
        return 4 + 4 * len(self.dims)

    @property
    def expected_size(self) -> int:
        """The size a file with this header has: the header, then every element."""
        return self.header_bytes + math.prod(self.dims) * IDX_TYPES[self.type_code][1]

    def claims(self) -> str:
        """What the header says the file holds, e.g. "60000 x 28 x 28 unsigned bytes"."""
        return f"{' x '.join(str(d) for d in self.dims)} {IDX_TYPES[self.type_code][0]}s"


def parse_idx_header(head: bytes, ndim: int) -> IdxHeader | str:
    """The IDX header at the start of ``head`` for a file of ``ndim`` dimensions, or what is wrong with it."""
    wanted = f"0x0000{UBYTE:02x}{ndim:02x}"
    if len(head) < 4:
        return f"it is {len(head)} bytes long, too short for the IDX magic number ({wanted})"
    if head[:2] != b"\0\0" or head[2] not in IDX_TYPES:
        return f"its magic number 0x{head[:4].hex()} is not an IDX one (expected {wanted})"
    if head[3] != ndim:
        return f"its header says {head[3]} dimensions (magic number 0x{head[:4].hex()}), expected {ndim} ({wanted})"
    if len(head) < 4 + 4 * ndim:
        return f"it is {len(head)} bytes long, too short for the {4 + 4 * ndim}-byte header of {ndim} dimensions"
    return IdxHeader(head[2], struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim]))


def idx_size_problem(header: IdxHeader, size: int, type_code: int = UBYTE) -> str | None:
    """What is wrong with an IDX file of ``size`` bytes starting with ``header`` (None: nothing)."""
    if header.type_code != type_code:
        return f"it holds {IDX_TYPES[header.type_code][0]}s; {IDX_TYPES[type_code][0]}s are expected"
    if header.expected_size != size:
        return (f"its header claims {header.claims()} ({header.expected_size:,} bytes with the "
                f"{header.header_bytes}-byte header), but the file is {size:,} bytes")
    return None


def not_regular(path: Path) -> str | None:
    """Why ``path`` (followed through links) is not a regular file, or None when it is one.

    A reader that reads to the end would never finish /dev/zero, and opening a named pipe waits for a writer.
    """
    mode = path.stat().st_mode
    return None if stat.S_ISREG(mode) else f"it is {file_kind(mode)}, not a regular file"


def idx_file_problem(path: Path, ndim: int, type_code: int = UBYTE) -> str | None:
    """What is wrong with the IDX file ``path`` (an existing path), from its header and size alone; None: nothing."""
    problem = not_regular(path)
    if problem is not None:
        return problem
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(4 + 4 * ndim)
    header = parse_idx_header(head, ndim)
    if isinstance(header, str):
        return header
    return idx_size_problem(header, size, type_code)


def size_problem(path: Path, limit: int) -> str | None:
    """Why the existing file ``path`` cannot be read whole in bounded memory and time, or None."""
    problem = not_regular(path)
    if problem is not None:
        return problem
    size = path.stat().st_size
    return f"it is {size:,} bytes, more than the {limit:,} expected at most" if size > limit else None


def records_problem(path: Path, record_bytes: int, max_records: int) -> str | None:
    """What is wrong with ``path``, a file of fixed-size records and nothing else (STL-10's ``*_X.bin``).

    Such a file has no header: its size is its only claim, a whole number of records, at least one, and no
    more than the dataset has (a larger file cannot be the dataset's, and its checksum would take minutes).
    """
    problem = not_regular(path)
    if problem is not None:
        return problem
    size = path.stat().st_size
    if size == 0 or size % record_bytes:
        return f"it is {size:,} bytes, not a whole number of {record_bytes:,}-byte records"
    if size // record_bytes > max_records:
        return f"it holds {size // record_bytes:,} records of {record_bytes:,} bytes; the dataset has {max_records:,}"
    return None
