"""`trainconsole run --processes N`: the same run as `torchrun --standalone --nproc_per_node=N -m engine run ...`.

torchrun's own launcher (torch.distributed.run) starts the N workers, each in its own session, and
forwards SIGINT, SIGTERM and SIGHUP to them: each stops at the next batch boundary the ranks agree on,
and rank 0 saves last.pth. What torchrun reports as a failed child is read back here as the run's exit
code (130 for a stopped run, 1 for a failed one), without its report of a "failure" that was a stop; a worker
killed by a signal (which could say nothing itself) is named in one line. torchrun keeps no log folder of its
own here (`--log-dir` /dev/null): nothing is left in the temporary folder, whatever ends the workers.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from engine.cli import spinner
from engine.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK


def worker_args(args, resume_from: Path | None) -> list[str]:
    """`run`'s arguments for each worker: the settings as checked here, and where rank 0 records the run."""
    from engine.cli.runs import detached_args

    out = detached_args(args, resume_from)
    if args.code_folder:
        out += ["--code-folder", str(Path(args.code_folder).resolve())]
    if args.json:
        out.append("--json")
    if args.into:
        out += ["--into", str(args.into)]
    return out


def launch(processes: int, run_args: list[str]) -> int:
    """Run `python -m engine run RUN_ARGS` in `processes` workers on this machine; the run's exit code."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun's agent logs its rendezvous, each worker's start and the signal it forwards; the run's own lines
    # are what the user reads
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    # each worker chooses its threads (engine.device.choose_threads); this only keeps torchrun from warning
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    argv = ["--standalone", f"--nproc-per-node={processes}", "--max-restarts=0", f"--log-dir={os.devnull}"]
    argv += ["-m", "engine", "run", *run_args]
    try:
        with spinner.handed_over():  # this process's status line until rank 0 shows its own
            run(parse_args(argv))
    except ChildFailedError as e:
        # a negative code is a signal's; SIGTERM is the agent's, ending the others once one has failed
        killed = {rank: f for rank, f in e.failures.items() if f.exitcode < 0 and f.exitcode != -signal.SIGTERM}
        for rank, failure in sorted(killed.items()):
            signal_number = -failure.exitcode
            print(
                f"trainconsole: process {rank} of {processes} died (killed by signal {signal_number}: "
                f"{failure.signal_name()})",
                file=sys.stderr,
            )
        codes = {failure.exitcode for failure in e.failures.values() if failure.exitcode > 0}
        if codes == {EXIT_INTERRUPTED} and not killed:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if killed else min(codes - {EXIT_INTERRUPTED}, default=EXIT_FAILED)
    except SignalException:  # the workers had the signal too, and ended as a stopped run does
        return EXIT_INTERRUPTED
    return EXIT_OK
