"""A ``data_dir`` that TFDS's path layer can open, checked before TFDS meets it."""

from __future__ import annotations

import os

from etils import epath


def check_data_dir(data_dir: str | os.PathLike[str] | None) -> None:
    """Raises ValueError, in one line naming ``data_dir``, when TFDS's path layer (``etils.epath``)
    cannot open it: a URL scheme it does not know, such as ``ram://`` or ``file://``."""
    if data_dir is None:
        return
    try:
        epath.Path(data_dir)
    except KeyError as exc:  # epath's lookup of the scheme
        scheme = str(exc.args[0]) if exc.args else "its scheme"
        hint = (f" (give the path without {scheme!r}: {os.fspath(data_dir)[len(scheme):]!r})"
                if scheme == "file://" else "")
        raise ValueError(f"data_dir={os.fspath(data_dir)!r}: TFDS cannot open paths that start "
                         f"with {scheme!r}; use a local folder or a gs:// path{hint}") from None
