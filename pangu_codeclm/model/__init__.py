"""The PanGu-Alpha CodeCLM network in MindSpore: layers, causal LM, masked cross-entropy, sharding strategies."""
from .loss import IGNORE_INDEX, ModalityMaskedCrossEntropy
from .pangu import NON_HF_PARAMETERS, PanguCodeCLMForCausalLM
from .parallel import Strategies

__all__ = ["IGNORE_INDEX", "ModalityMaskedCrossEntropy", "NON_HF_PARAMETERS", "PanguCodeCLMForCausalLM", "Strategies"]
