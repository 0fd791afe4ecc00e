"""`trainconsole trust RUN`: sign a run folder or checkpoint the user has inspected as their own.

Settings from a run folder or checkpoint import no code on their own (engine.settings.user_code); a run the user
created is signed with their key and recognised. This command signs one they did not create, or one they edited,
after reading it: its settings may then import exactly the `module:name` paths it shows, nothing more.
"""

from __future__ import annotations

from engine.cli.exits import EXIT_OK
from engine.io.text import printable


def add_parser(subparsers) -> None:
    tr = subparsers.add_parser(
        "trust", help="sign a run folder or checkpoint you inspected, so its own model or dataset code may be imported"
    )
    tr.add_argument("run", help="a run folder (its settings.toml and full checkpoints) or a checkpoint file")


def cmd_trust(args) -> int:
    from engine.runs.signatures import trust

    for path, imports in trust(args.run):
        code = ", ".join(sorted(imports)) if imports else "no code of its own (built-in names only)"
        print(f"signed {printable(path)} as yours; it may import: {printable(code)}")
    return EXIT_OK
