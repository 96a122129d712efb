"""Plain file I/O helpers: writes that never leave a partial file behind, strict JSON."""
import glob
import math
import numbers
import os
import os.path as osp
import tempfile

_UMASK = os.umask(0)
os.umask(_UMASK)
_TMP_SUFFIX = '.tmp'


def atomic_write(path: str, data) -> None:
    """Write ``data`` (bytes or str) to ``path`` so that it is either absent/old or complete:
    a temporary file in the same folder, fsync'ed, ``os.replace``'d over the target, then the
    folder fsync'ed so that the rename itself survives a crash (callers may delete older files
    once this returns)."""
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.', suffix=_TMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data.encode('utf-8') if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def strict_json(value):
    """``value`` with every non-finite number (NaN, inf) replaced by None, recursively: strict
    JSON readers reject the NaN that ``json.dump`` writes."""
    if isinstance(value, dict):
        return type(value)((k, strict_json(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return None if isinstance(value, numbers.Real) and not math.isfinite(value) else value


def write_leftovers(folder: str) -> list:
    """The temporary files of ``atomic_write`` calls that were killed before they finished
    (``.NAME.XXXXXXXX.tmp``): a process killed mid-write cannot remove its own."""
    return sorted(glob.glob(osp.join(glob.escape(folder), f'.*.*{_TMP_SUFFIX}')))
