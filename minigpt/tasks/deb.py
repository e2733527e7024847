"""Reading one file out of a Debian package (.deb) in pure Python.

A .deb is an `ar` archive holding debian-binary, control.tar.* and data.tar.*; the installed files
are in data.tar, compressed with xz (most packages), gzip, bzip2 or zstd. The standard library
reads all of these but zstd (Python 3.14 adds it), which is reported as such.
"""
import io
import tarfile

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60  # name 16, mtime 12, uid 6, gid 6, mode 8, size 10, magic 2 ("`\n")
TAR_MODES = {".tar.xz": "r|xz", ".tar.gz": "r|gz", ".tar.bz2": "r|bz2", ".tar": "r|"}


def ar_members(data, source):
    """{name: bytes} of an ar archive."""
    if not data.startswith(AR_MAGIC):
        raise ValueError(f"{source} is not a Debian package (no ar archive header)")
    members, offset = {}, len(AR_MAGIC)
    while offset + AR_HEADER <= len(data):
        header = data[offset:offset + AR_HEADER]
        if header[58:60] != b"`\n":
            raise ValueError(f"{source}: broken ar member header at byte {offset}")
        name = header[:16].decode("ascii").strip().rstrip("/")  # GNU ar ends names with "/"
        size = int(header[48:58].decode("ascii").strip())
        start = offset + AR_HEADER
        members[name] = data[start:start + size]
        offset = start + size + (size % 2)  # members are aligned to even offsets
    return members


def read_deb_member(deb_path, member):
    """The bytes of the file `member` (e.g. "usr/share/doc/...") inside the package's data.tar."""
    members = ar_members(deb_path.read_bytes(), deb_path)
    data_name = next((name for name in members if name.startswith("data.tar")), None)
    if data_name is None:
        raise ValueError(f"{deb_path} has no data.tar member (members: {sorted(members)})")
    suffix = data_name[len("data"):]
    if suffix == ".tar.zst":
        raise RuntimeError(f"{deb_path} compresses its files with zstd, which this Python cannot read; "
                           "use Python 3.14+ or unpack it with `dpkg-deb -x`")
    if suffix not in TAR_MODES:
        raise ValueError(f"{deb_path}: unknown data archive {data_name}")
    with tarfile.open(fileobj=io.BytesIO(members[data_name]), mode=TAR_MODES[suffix]) as tar:
        for info in tar:  # a stream: read in order, stop at the wanted file
            if info.isfile() and info.name.removeprefix("./") == member.removeprefix("./"):
                return tar.extractfile(info).read()
    raise ValueError(f"{deb_path} has no file {member}")
