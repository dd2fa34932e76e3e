"""distill-suite: knowledge and dataset distillation of large (vision-)language models into edge students.

The package imports nothing heavy at top level; submodules import torch, transformers and friends as they need.
"""

__version__ = "0.1.0"
