"""runtime.compile: validated as a boolean, never part of a trial's identity, and wrapping the step.

No test compiles a step: compiling even the smallest model takes tens of seconds on this 2-core CPU
(benchmarks/compile_step.md), past what the suite can spend on it; torch.compile is lazy, so wrapping is
checked without compiling."""
from __future__ import annotations

import pytest

from models.presets import build_model
from scaling.compile import training_step
from scaling.config import TrialConfig
from scaling.errors import GrscaleError


def config(**runtime) -> TrialConfig:
    return TrialConfig.from_dict({"model": {"family": "dlrm", "size": "xs"}, "budget": 1e9, "runtime": runtime})


def test_compile_is_a_runtime_boolean_outside_the_identity():
    assert config().runtime.compile is False
    assert config(compile=True).identity() == config().identity()  # a run resumes with it toggled
    with pytest.raises(GrscaleError, match="trial.runtime.compile: expected true or false, got 'yes'"):
        config(compile="yes")


def test_the_step_is_wrapped_only_where_asked():
    model = build_model("dlrm", "xs", 20, 4, 8)
    assert training_step(model, False) == model.training_loss
    compiled = training_step(model, True)
    assert compiled != model.training_loss and compiled._torchdynamo_orig_callable == model.training_loss
