"""Dataset registry (sources, checksums, mirrors) and loaders; the names users type are registered here, once.

>>> from suite.data import load_dataset
>>> splits = load_dataset("semeval2013-sra", corpus="sciEntsBank")  # doctest: +SKIP
>>> len(splits["train"]), splits.skipped  # doctest: +SKIP
(4969, {})
"""

from suite.data.registry import (
    DATASETS,
    DatasetSpec,
    FileCheck,
    fetch_dataset,
    get_spec,
    list_datasets,
    load_dataset,
    resolve_dataset,
    verify_dataset,
)
from suite.data.rows import Splits

DATASETS.register("semeval2013-sra", "suite.data.catalog:SEMEVAL", "SemEval-2013 Task 7 short-answer scoring")
DATASETS.register("gsm8k", "suite.data.catalog:GSM8K", "GSM8K math word problems with worked solutions")
DATASETS.register("pubmedqa-pqal", "suite.data.catalog:PUBMEDQA", "PubMedQA expert-labelled yes/no/maybe")
DATASETS.register("symptom2disease", "suite.data.catalog:SYMPTOM2DISEASE", "symptom descriptions -> 24 diagnoses")
DATASETS.register("mtsamples", "suite.data.catalog:MTSAMPLES", "500 medical transcriptions with specialties")
DATASETS.register("iu-xray-reports", "suite.data.catalog:IU_XRAY", "IU chest X-ray reports + image projections")
DATASETS.register(
    "radlabels-synthetic", "suite.data.catalog:RADLABELS", "synthetic chest X-ray reports with 49 finding labels"
)
DATASETS.register("bdd-x", "suite.data.catalog:BDDX", "BDD-X driving actions with justifications")

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "FileCheck",
    "Splits",
    "fetch_dataset",
    "get_spec",
    "list_datasets",
    "load_dataset",
    "resolve_dataset",
    "verify_dataset",
]
