"""Private state stays private: owner-only folders (0700) and files (0600).

The warehouse holds contacts' names and e-mails as delivered; the Prefect database, run
records, models, locks, staged extracts, dbt artifacts and quality results are the run's own.
None of it is for other local users. Two things keep it so:

- `flows.files.restrict_umask` (called by `flows.prefect_env.configure`, so by every command before it
  writes anything): the process umask is `077`, so every file any library creates (DuckDB,
  SQLite under Prefect, dbt, Great Expectations) is owner-only from its first byte; the
  temporary Prefect server, a child process, inherits it.
- `secure_state` (at the start of every run, from `flows.run.recovery.recover`): folders and
  files of the state that are open to others (made by an earlier version, or by hand) are
  closed (group and other bits removed) and each is logged. Fixing rather than only warning:
  the data is personal, the files are the pipeline's own, and the change only takes rights
  away; sharing is what serving is for.

Serving (the published DuckDB file and Parquet that BI reads) is readable on purpose: `0755`
folders, `0644` files (`flows.files.readable`). When the serving folder lies inside the state
folder (the default `<home>/serving`), the state folder is `0711`: other users may pass
through it to serving but cannot list it, and everything else in it is owner-only.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from flows.files import private_dir, readable
from flows.settings import Settings

log = logging.getLogger(__name__)

HOME_WITH_SERVING = 0o711  # others may traverse to <home>/serving, not list or read the rest
OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO
SHOWN = 10  # paths named in the warning; the count says how many more


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def private_roots(settings: Settings) -> list[Path]:
    """The state that is nobody else's business: the state folder (serving excluded) and the
    private paths configured outside it."""
    wal = settings.warehouse.with_name(f"{settings.warehouse.name}.wal")
    roots = [settings.home, settings.warehouse, wal, settings.registry, settings.sync]
    prefect_home = os.environ.get("PREFECT_HOME")
    if prefect_home:
        roots.append(Path(prefect_home).expanduser().resolve())
    if settings.duckdb_temp_dir:
        roots.append(settings.duckdb_temp_dir.expanduser().resolve())
    out: list[Path] = []
    for root in roots:
        if not any(_inside(root, kept) for kept in out):
            out = [kept for kept in out if not _inside(kept, root)] + [root]
    return out


def _walk(root: Path, skip: Path) -> Iterable[Path]:
    """`root` and everything under it, not following links, leaving out `skip`'s subtree."""
    if _inside(root, skip) or not os.path.lexists(root):
        return
    yield root
    if root.is_symlink() or not root.is_dir():
        return
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not _inside(here / d, skip)]
        yield from (here / d for d in dirs)
        yield from (here / f for f in files)


def secure_state(settings: Settings) -> list[str]:
    """Close every private folder and file open to other users; keep serving readable.

    Returns what was changed, one line per path (also logged as a warning).
    """
    serving = settings.serving
    fixed: list[str] = []
    for root in private_roots(settings):
        for path in _walk(root, serving):
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode) or not st.st_mode & OPEN_BITS:
                continue
            mode = stat.S_IMODE(st.st_mode)
            wanted = mode & ~OPEN_BITS
            if stat.S_ISDIR(st.st_mode) and _inside(serving, path):  # on the way to serving
                wanted |= HOME_WITH_SERVING & OPEN_BITS
                if mode == wanted:
                    continue
            os.chmod(path, wanted)
            now = stat.filemode(stat.S_IFMT(st.st_mode) | wanted)
            fixed.append(f"{path}: {stat.filemode(st.st_mode)} -> {now}")
    serving_readable(settings)
    if fixed:
        log.warning(
            "private state was readable by other users; now owner-only (%d path(s)): %s%s",
            len(fixed),
            "; ".join(fixed[:SHOWN]),
            f"; and {len(fixed) - SHOWN} more" if len(fixed) > SHOWN else "",
        )
    return fixed


def _passable(folder: Path, settings: Settings) -> None:
    """Others may pass through `folder` (inside the state folder) to serving: `--x` for group
    and others, nothing more."""
    mode = stat.S_IMODE(folder.stat().st_mode)
    wanted = (mode & ~OPEN_BITS) | (HOME_WITH_SERVING & OPEN_BITS)
    if mode != wanted:
        os.chmod(folder, wanted)


def serving_readable(settings: Settings) -> None:
    """Serving readable by every local user (`0755`/`0644`), and the folders between the
    state folder and serving passable (`0711`) when serving lies inside it."""
    serving, home = settings.serving, settings.home
    if _inside(serving, home) and serving != home and home.is_dir():
        for folder in [serving.parent, *serving.parent.parents]:
            if not _inside(folder, home):
                break
            if folder.is_dir():
                _passable(folder, settings)
    if serving.is_dir():
        readable(serving)


def ensure_home(settings: Settings) -> Path:
    """The state folder, created owner-only (`0711` when serving lies inside it)."""
    home = private_dir(settings.home)
    if _inside(settings.serving, home) and home != settings.serving:
        _passable(home, settings)
    elif stat.S_IMODE(home.stat().st_mode) & OPEN_BITS:
        os.chmod(home, stat.S_IMODE(home.stat().st_mode) & ~OPEN_BITS)
    return home
