"""`python -m engine`: the headless CLI.

`python -m` puts the current folder first on sys.path, where a stray
`tomlkit.py` (or any module named like a dependency) would be imported in its
place; it is taken off before anything else is imported. User modules are
found in the settings file's folder, after the installed packages
(engine.settings.user_code).
"""

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from engine.cli import main  # noqa: E402

raise SystemExit(main())
