"""Conversion between checkpoint formats (`convert.convert`, over `pangu_codeclm.checkpoints`) and the PyTorch module
that runs exported HF checkpoints (`torch_model`)."""
