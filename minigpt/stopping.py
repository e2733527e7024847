"""Stopping a run with Ctrl-C (or SIGTERM, SIGHUP) without losing its work: the first signal asks the
loop to finish its step and save, the second stops at once; the exit code then says which signal stopped the
run. Used by pre-training and fine-tuning.
"""
import signal


class StopNow(KeyboardInterrupt):
    """A second stop signal: leave at once (the checkpoints saved so far are complete). signum: which one."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequest:
    """Turns the first Ctrl-C into a flag the loop checks between steps; the second one interrupts.

    SIGTERM (sent by `kill`, `timeout` and job schedulers) and SIGHUP (a closed terminal) are a first Ctrl-C
    too: the run finishes its step and saves, instead of losing every step since the last checkpoint. A signal
    the process was started to ignore stays ignored: `nohup minigpt pretrain &` must outlive its terminal.
    """

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

    def __init__(self):
        self.requested = False
        self.signal = None  # the first signal received, for the exit code (128 + its number)

    def __enter__(self):
        self.previous = {signum: signal.signal(signum, self.handle) for signum in self.SIGNALS
                         if signal.getsignal(signum) is not signal.SIG_IGN}
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise StopNow(signum)
        self.requested, self.signal = True, signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        try:
            print(f"\nminigpt: {name}: finishing this step, saving a checkpoint ({name} again to stop at once)",
                  flush=True)
        except OSError:  # SIGHUP: the terminal may be gone; saving matters more than saying so
            pass

    def __exit__(self, *exc):
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


def stopped_exit_code(final):
    """0 for a run that finished; 128 + the signal's number for one that a signal stopped early (saved, but a
    script's `&&` must not go on as if it had finished). Under MPI a rank that was not signalled itself stops
    with the others and knows no signal: it says SIGINT's 130."""
    if not final["interrupted"]:
        return 0
    return 128 + (final["stop_signal"] or signal.SIGINT)
