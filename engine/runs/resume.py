"""What a resume starts from: the settings a full checkpoint was trained with, checked before anything runs.

`trainconsole run --resume` and the console's resume key both read them here,
so both refuse the same things: a checkpoint that is not a full one, and
settings that name code the user did not allow (engine.settings.user_code).
"""

from __future__ import annotations

import os
from typing import Collection

from engine.runs.checkpoints import CheckpointError, load_checkpoint
from engine.settings.config import Settings, from_dict, parse_override
from engine.settings.user_code import check_untrusted


def resume_settings(
    path: str | os.PathLike, allowed_imports: Collection[str] = (), overrides: Collection[str] = ()
) -> tuple[Settings, int]:
    """The checkpoint's settings with `--set` overrides on top, and the epochs it completed."""
    saved = load_checkpoint(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("settings"), dict):
        raise CheckpointError(f"{path} is not a full checkpoint (use last.pth or epoch_N.pth)")
    settings = stored = from_dict(saved["settings"], f"{path} settings")
    for text in overrides:  # e.g. training.epochs=40 to train longer
        key, value = parse_override(text)
        settings = settings.replace(key, value, f"--set {text}")
    check_untrusted(settings, str(path), allowed_imports, saved.get("signature"), signed=stored,
                    stored=saved["settings"])
    epoch = saved.get("epoch", 0)
    return settings, epoch if isinstance(epoch, int) else 0
