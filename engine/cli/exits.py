"""The command line's exit codes, one set for every command.

0 done, 1 training failed, 2 bad settings or usage (one line on stderr, no traceback), 3 nothing to do: `pause`
sent to a paused run or `resume` to a running one (one line, "run x is already paused"; the run is as asked),
130 interrupted: Ctrl-C (SIGINT), SIGTERM and SIGHUP all stop the run at the next batch boundary with last.pth
saved, so `trainconsole run --resume last` continues it. One code for every graceful stop lets a script tell
"resumable" from "failed"; a second Ctrl-C aborts at once (last.pth then holds the previous epoch). Code 3 is
not 0 so that a script can tell that its pause changed nothing, and not 1 since nothing failed.
"""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ALREADY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
