"""Stopping long work on SIGINT or SIGTERM: the first signal asks it to stop at its next step (a
trial checkpoints first, so nothing is lost), a second one stops at once. Shared by `grscale train`
and `grscale sweep run`, which exit with the shell's code for the signal (130, 143)."""
from __future__ import annotations

import signal
import sys
from typing import Callable


class StopOnSignal:
    """Installed for its lifetime (until `restore`); callable as a trial's `should_stop`: the first
    signal's name once one came. `on_first` passes that name on (a sweep writes its stop file)."""

    def __init__(self, first_message: str, again_message: str,
                 on_first: Callable[[str], None] | None = None) -> None:
        self.first_message, self.again_message, self.on_first = first_message, again_message, on_first
        self.received: str | None = None
        self.at_once = False
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, number: int, frame) -> None:
        name = signal.Signals(number).name
        if self.received is not None:
            self.at_once = True
            print(f"\n{name} again: {self.again_message}", file=sys.stderr, flush=True)
            raise KeyboardInterrupt
        self.received = name
        if self.on_first is not None:
            self.on_first(name)
        print(f"\n{name}: {self.first_message}", file=sys.stderr, flush=True)

    def __call__(self) -> str | None:
        return self.received

    @property
    def exit_code(self) -> int:
        """As a shell reports a process the signal ended: 128 + its number (130 SIGINT, 143 SIGTERM)."""
        return 128 + signal.Signals[self.received].value

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            # None: a handler installed outside Python (Ray's); the default is what remains to restore.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
