"""Files botwatch reads at run time, shipped inside the package.

In a checkout these are links to the repository's top-level `alertmanager/` and `prometheus/` folders and
`runbook.md`,
the files users edit and the generators write; a wheel carries copies of them. Either way they are read
through `importlib.resources`, never through a path relative to a source file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(*parts: str) -> Path:
    """The shipped file or folder at `parts` (e.g. "alertmanager", "alertmanager.yml") on disk.

    botwatch is installed unzipped, so the resource is a real path that Prometheus or Alertmanager,
    started as other processes, can be pointed at.
    """
    found = resources.files(__name__).joinpath(*parts)
    if not isinstance(found, Path) or not found.exists():
        raise FileNotFoundError(f"botwatch is installed without {'/'.join(parts)}: reinstall the package")
    return found
