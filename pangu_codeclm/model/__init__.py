"""The PanGu-Alpha CodeCLM network in MindSpore: layers, causal LM, masked cross-entropy, sharding strategies."""
from .loss import ModalityMaskedCrossEntropy
from .pangu import NON_HF_PARAMETERS, PanguCodeCLMForCausalLM
from .parallel import Strategies

__all__ = ["ModalityMaskedCrossEntropy", "NON_HF_PARAMETERS", "PanguCodeCLMForCausalLM", "Strategies"]
