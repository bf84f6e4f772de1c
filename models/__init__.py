"""Model families (HSTU, SASRec, DLRM), their size presets and variants, losses and parameter counts.

Import the submodules themselves (`models.presets`, `models.hstu`, ...): this package imports
nothing, so that torch-free modules such as `models.loss_config` load without torch."""
