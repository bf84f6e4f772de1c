"""Named size presets for every family, in one table, and the model factory.

xxs..m train on a 2-core CPU in minutes; l and xl are for GPUs (xxs extends the ladder down, so
that IsoFLOP profiles on small data have a size below the best one; DLRM's goes down to xxxs).
Non-embedding parameters span over two orders of magnitude per family. The *-ml1m presets are the
HSTU paper's ML-1M configs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from models.base import Recommender, param_counts
from models.dlrm import DLRM, DLRMConfig
from models.hstu import HSTU, HSTUConfig
from models.sasrec import SASRec, SASRecConfig
from scaling.errors import GrscaleError

FAMILIES = {"hstu": (HSTU, HSTUConfig), "sasrec": (SASRec, SASRecConfig), "dlrm": (DLRM, DLRMConfig)}

# name -> architecture fields of the family's config (dataset-derived fields come at build time).
PRESETS: dict[str, dict] = {
    "hstu-xxs": dict(d_model=16, num_blocks=1, num_heads=1, dqk=16, dv=16),
    "hstu-xs": dict(d_model=32, num_blocks=1, num_heads=1, dqk=32, dv=32),
    "hstu-s": dict(d_model=64, num_blocks=2, num_heads=2, dqk=32, dv=32),
    "hstu-m": dict(d_model=128, num_blocks=4, num_heads=4, dqk=32, dv=32),
    "hstu-l": dict(d_model=256, num_blocks=8, num_heads=4, dqk=64, dv=64),
    "hstu-xl": dict(d_model=512, num_blocks=16, num_heads=8, dqk=64, dv=64),
    "hstu-ml1m": dict(d_model=50, num_blocks=2, num_heads=1, dqk=50, dv=50),
    "hstu-large-ml1m": dict(d_model=50, num_blocks=8, num_heads=2, dqk=25, dv=25),
    "sasrec-xxs": dict(d_model=16, num_blocks=1, num_heads=1),
    "sasrec-xs": dict(d_model=32, num_blocks=1, num_heads=1),
    "sasrec-s": dict(d_model=64, num_blocks=2, num_heads=2),
    "sasrec-m": dict(d_model=128, num_blocks=4, num_heads=4),
    "sasrec-l": dict(d_model=256, num_blocks=8, num_heads=4),
    "sasrec-xl": dict(d_model=512, num_blocks=16, num_heads=8),
    "sasrec-ml1m": dict(d_model=50, num_blocks=2, num_heads=1, ffn_mult=1, activation="relu"),
    # dlrm-xxxs: on ML-1M the two-tower's best size at 1e10-1e11 FLOPs is xxs, the ladder's foot.
    "dlrm-xxxs": dict(emb_dim=4, bottom_mlp=(8,), top_mlp=(16, 8), tower_mlp=(16,)),
    "dlrm-xxs": dict(emb_dim=8, bottom_mlp=(16,), top_mlp=(32, 16), tower_mlp=(32,)),
    "dlrm-xs": dict(emb_dim=16, bottom_mlp=(32,), top_mlp=(64, 32), tower_mlp=(64,)),
    "dlrm-s": dict(emb_dim=32, bottom_mlp=(64,), top_mlp=(256, 128), tower_mlp=(128,)),
    "dlrm-m": dict(emb_dim=64, bottom_mlp=(128, 64), top_mlp=(512, 256, 128), tower_mlp=(256, 256)),
    "dlrm-l": dict(emb_dim=128, bottom_mlp=(256, 128), top_mlp=(1024, 1024, 512, 256),
                   tower_mlp=(1024, 512)),
    "dlrm-xl": dict(emb_dim=256, bottom_mlp=(512, 256), top_mlp=(2048, 2048, 1024, 512),
                    tower_mlp=(2048, 2048, 1024)),
}


# Named model variants: architecture choices over every size of a family, recorded per run.
# "default" is grscale's own; "paper" builds the models as the HSTU paper's code does: HSTU's time
# bias from the predicted interaction's time, q.k unscaled, and its block's parameters (plain
# LayerNorms, no U/V/Q/K bias, its init); SASRec in Kang & McAuley's block layout.
# "paper-attention" is the paper's HSTU attention with grscale's parameters.
PAPER_ATTENTION = {"query_time": "target", "qk_scale": 1.0}
VARIANTS: dict[str, dict[str, dict]] = {
    "default": {"hstu": {}, "sasrec": {}, "dlrm": {}},
    "paper": {"hstu": {**PAPER_ATTENTION, "parameterization": "paper"}, "sasrec": {"layout": "original"}},
    "paper-attention": {"hstu": PAPER_ATTENTION, "sasrec": {"layout": "original"}},
}


def variant_fields(family: str, variant: str) -> dict:
    """The config fields variant `variant` sets on `family`; refuses a variant the family lacks."""
    if variant not in VARIANTS:
        raise GrscaleError(f"unknown model variant {variant!r}; known variants: {', '.join(VARIANTS)}")
    if family not in VARIANTS[variant]:
        known = ", ".join(name for name, by_family in VARIANTS.items() if family in by_family)
        raise GrscaleError(f"variant {variant!r} is not defined for {family}; its variants: {known}")
    return VARIANTS[variant][family]


def model_config(family: str, size: str, *, num_items: int, num_users: int, max_seq_len: int,
                 variant: str = "default", **overrides) -> HSTUConfig | SASRecConfig | DLRMConfig:
    """The preset's config with dataset sizes filled in, the variant's and then `overrides`' fields on top."""
    if family not in FAMILIES:
        raise GrscaleError(f"unknown model family {family!r}; known families: {', '.join(FAMILIES)}")
    name = f"{family}-{size}"
    if name not in PRESETS:
        known = ", ".join(p.removeprefix(family + "-") for p in PRESETS if p.startswith(family + "-"))
        raise GrscaleError(f"unknown {family} size {size!r}; known sizes: {known}")
    data = {"num_items": num_items}
    data.update({"num_users": num_users} if family == "dlrm" else {"max_seq_len": max_seq_len})
    fields = {**PRESETS[name], **variant_fields(family, variant), **data, **overrides}
    config_cls = FAMILIES[family][1]
    try:
        return config_cls(**fields)
    except TypeError as error:  # an override naming no field of this family's config
        raise GrscaleError(f"bad override for {name}: {error}") from None


def build_model(family: str, size: str, num_items: int, num_users: int, max_seq_len: int,
                variant: str = "default", **overrides) -> Recommender:
    """A fresh model for preset `{family}-{size}` in `variant`; `overrides` replace config fields."""
    config = model_config(family, size, num_items=num_items, num_users=num_users,
                          max_seq_len=max_seq_len, variant=variant, **overrides)
    return FAMILIES[family][0](config)


@dataclass(frozen=True, kw_only=True)
class PresetInfo:
    name: str
    family: str
    size: str
    embedding_params: int
    nonembedding_params: int  # counted for `task`: the other task's head is left out
    task: str


def list_presets(num_items: int, num_users: int, max_seq_len: int,
                 task: str = "retrieval") -> list[PresetInfo]:
    """Every preset with its parameter counts for this catalog, in table order."""
    rows = []
    for name in PRESETS:
        family, size = name.split("-", 1)
        with torch.device("meta"):  # shapes only: no memory for large catalogs
            model = build_model(family, size, num_items, num_users, max_seq_len)
        embedding, nonembedding = param_counts(model, task)
        rows.append(PresetInfo(name=name, family=family, size=size, embedding_params=embedding,
                               nonembedding_params=nonembedding, task=task))
    return rows
