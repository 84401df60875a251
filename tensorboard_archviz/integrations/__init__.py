"""Callbacks for the trainers people use; importing this package imports no framework.

- ``tensorboard_archviz.integrations.lightning.ArchVizLightningCallback`` — PyTorch Lightning
  (``lightning`` or ``pytorch_lightning``), through the trainer's ``TensorBoardLogger``.
- ``tensorboard_archviz.integrations.hf_trainer.ArchVizTrainerCallback`` — Hugging Face
  ``transformers.Trainer``, into the run of its TensorBoard writer.

Both write the architecture once at the start of training, with the example input taken from
the first batch, on rank 0 only, and never break training (one warning). They are also
available lazily as ``tensorboard_archviz.ArchVizLightningCallback`` and
``tensorboard_archviz.ArchVizTrainerCallback``.
"""
