"""Model families (HSTU, SASRec, DLRM), their size presets, losses and parameter counts."""
from models.base import TASKS, Recommender, param_counts
from models.dlrm import DLRM, DLRMConfig
from models.hstu import HSTU, HSTUConfig
from models.losses import LossConfig
from models.presets import PRESETS, PresetInfo, build_model, list_presets, model_config
from models.sasrec import SASRec, SASRecConfig

__all__ = [
    "DLRM", "DLRMConfig", "HSTU", "HSTUConfig", "LossConfig", "PRESETS", "PresetInfo", "Recommender",
    "SASRec", "SASRecConfig", "TASKS", "build_model", "list_presets", "model_config", "param_counts",
]
