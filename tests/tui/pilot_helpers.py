"""Pilot helpers: each test is a plain function that runs one coroutine (no pytest-asyncio needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.config import Settings

SIZE = (120, 40)


def tiny_settings(tmp_path: Path, epochs: int = 3) -> Settings:
    return Settings().replace("run.runs_dir", str(tmp_path / "runs")).replace("training.epochs", epochs)


async def wait_for(pilot, condition, timeout: float = 60.0, step: float = 0.05) -> bool:
    """Poll instead of pausing blindly: a CPU-bound worker makes each pause slow."""
    for _ in range(int(timeout / step)):
        await pilot.pause(step)
        if condition():
            return True
    return False


def run(coro) -> None:
    asyncio.run(coro)
