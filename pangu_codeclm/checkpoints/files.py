"""File names of the checkpoint layouts, defined once here (the tokenizer's own files, `vocab.model` and
`replicated_tokens_map.pkl` among them, are defined in `pangu_codeclm.tokenization`)."""

HF_CONFIG = "config.json"                # GPT-2 style config of the HF layout
MS_CONFIG = "pangu_codeclm.json"         # this project's config file (MindSpore layout, training runs)
MS_FORMAT = "pangu-codeclm-mindspore"    # its "format" value
SAFETENSORS = "model.safetensors"        # weights of both directory layouts
TORCH_BIN = "pytorch_model.bin"          # optional PyTorch weights of the HF layout
CHECKPOINT_SUFFIXES = (".ckpt", ".safetensors")   # MindSpore checkpoint files (training, model zoo)
TORCH_INSTALL_HINT = "pip install 'pangu-codeclm[torch]'"
