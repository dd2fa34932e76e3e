"""Education pack: automatic scoring of student answers (SemEval-2013 SRA) and of model-written math solutions
(GSM8K verifier), distilled from a cross-encoder teacher into students that run on a school laptop.

``distill run education [--profile quick|full]`` runs it (:mod:`domains.education.pipeline`); ``distill app
education`` demos it (``apps/education.py``). Importing this package loads nothing heavy, so the app can be served
without torch.
"""
