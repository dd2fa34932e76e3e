"""Dataset distillation (survey section 2.2): condense an image set into a few synthetic images per class
(:mod:`suite.condense.methods`), the networks they are distilled with and judged on (:mod:`suite.condense.nets`),
differentiable Siamese augmentation (:mod:`suite.condense.augment`) and the training that scores a set
(:mod:`suite.condense.train`)."""

from suite.condense.methods import METHODS, CondenseConfig, condense
from suite.condense.train import ImageSet, TrainConfig, accuracy, train_net

__all__ = ["METHODS", "CondenseConfig", "ImageSet", "TrainConfig", "accuracy", "condense", "train_net"]
