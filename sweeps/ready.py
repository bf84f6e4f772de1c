"""The order in which a sweep's trials start: Tune asks for the next trial whenever a slot frees, and
gets the first planned one that can start. Every trial can, except a branch of a branched sweep
before its trunk's snapshot exists: meanwhile other trials take the slots, and the branch starts as
soon as its snapshot is written (or once its trunk has ended without one: it then fails, saying so).
"""
from __future__ import annotations

from pathlib import Path

from ray.tune.search import Searcher

from scaling.schema import snapshot_name
from sweeps.grid import TrialPlan


class ReadyTrials(Searcher):
    def __init__(self, todo: list[TrialPlan], trials_dir: Path, stop_requested) -> None:
        super().__init__()
        self.waiting = list(todo)
        self.trials_dir = Path(trials_dir)
        self.stop_requested = stop_requested
        self.unfinished = {p.trial_id for p in todo}
        self.by_tune_id: dict[str, str] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the trials are the plan's: nothing to search

    # The trial folders are the sweep's record (a resume reads them), not Tune's experiment state.
    def save(self, checkpoint_path: str) -> None:
        pass

    def restore(self, checkpoint_path: str) -> None:
        pass

    def can_start(self, plan: TrialPlan) -> bool:
        branch = plan.config.branch
        if branch.role != "branch" or branch.trunk not in self.unfinished:
            return True
        return (self.trials_dir / branch.trunk / snapshot_name(branch.start)).exists()

    def suggest(self, trial_id: str) -> dict | str | None:
        if not self.waiting or self.stop_requested():
            return Searcher.FINISHED
        for plan in self.waiting:
            if self.can_start(plan):
                self.waiting.remove(plan)
                self.by_tune_id[trial_id] = plan.trial_id
                return {"trial_id": plan.trial_id}
        return None  # asked again at Tune's next step

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.unfinished.discard(self.by_tune_id.get(trial_id, ""))
