"""Where the data dir is, known without building Settings.

Settings (pydantic) costs about 0.2 s to import. A command the running daemon answers
needs only the data dir to find its socket, so it reads this and nothing more.
"""

from __future__ import annotations

import os
from pathlib import Path

from contextd.connectors.filters import DATA_DIR_MARK
from contextd.errors import ConfigError


def default_home() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("contextd", appauthor=False))


def home_from_env() -> Path:
    """`CONTEXTD_HOME` as Settings reads it, else the platform data dir."""
    raw = os.environ.get("CONTEXTD_HOME")
    return (Path(raw) if raw else default_home()).expanduser().resolve()


# What contextd keeps in a data dir, and whether each is a file or a folder.
LAYOUT = {
    "catalog.sqlite3": "file",
    "contextd.lock": "file",
    "chroma": "folder",
    "logs": "folder",
    "spool": "folder",
    "scratch": "folder",  # eval and calibrate (evaluation.SCRATCH)
}


def make_home(home: Path) -> None:
    """Create the data dir readable by its owner only: it holds the indexed code. One
    that an earlier contextd made readable by others (it holds a catalog) is closed too."""
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(
            f"The data dir {home} is a file, or lies below one. Point CONTEXTD_HOME at a "
            "folder (it is created if missing), or unset it to use the default."
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the data dir {home}: {exc.strerror}. Point CONTEXTD_HOME at a "
            "folder you can write, or unset it to use the default."
        ) from None
    mark = home / DATA_DIR_MARK
    if not mark.exists():
        try:  # what tells every source that finds this folder to leave it out
            mark.write_text(
                "This folder is a contextd data dir (CONTEXTD_HOME): the index, its logs "
                "and the daemon's tokens. contextd never indexes or reads it as a source.\n"
            )
        except OSError:
            pass  # a read-only data dir: its catalog and store still tell what it is
    for name, kind in LAYOUT.items():
        entry = home / name
        if (kind == "folder" and entry.is_file()) or (kind == "file" and entry.is_dir()):
            other = "file" if kind == "folder" else "folder"
            raise ConfigError(
                f"{entry} is a {other}, where contextd keeps its {name} {kind}. Move it out "
                "of the data dir (contextd makes its own again)."
            )
    try:
        mode = home.stat().st_mode
        # Never a folder others share on purpose (sticky, as /tmp): not a data dir we made.
        if mode & 0o077 and not mode & 0o1000 and (home / "catalog.sqlite3").exists():
            home.chmod(0o700)
    except OSError:
        pass  # not ours to change (another owner): reading it is what matters
