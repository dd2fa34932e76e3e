"""The dataset specs: sources pinned to a commit, sha256 of every file, license and citation (from PROVENANCE.md).

Registered by name in ``suite/data/__init__.py``. Files marked "mirror only" are derived convenience files made
for the data mirror (no text changed); they have no public URL.
"""

from __future__ import annotations

from suite.data.registry import DatasetSpec


def _raw(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


_SEMEVAL_REPO, _SEMEVAL_COMMIT = "leocomelli/score-freetext-answer", "5fd154c863f8cf4df19463c02a1a3eb98e262aa6"
SEMEVAL = DatasetSpec(
    name="semeval2013-sra",
    folder="semeval2013_task7_sra_2way",
    files={
        "questions.jsonl": "bfd51c933fbc2585eece14d8b0b4a8168c06fa043b58685556e88c9a90e0cb84",
        "student_answers_beetle.jsonl": "73f38e6d5c7aa1e7de61c6caeb263a36353067876d5898091ae0addb235fe3d7",
        "student_answers_sciEntsBank.jsonl": "ef065b688b56d085d04cd0c609658c6ea44663d011a8617cc2850692a333891b",
        "xml_SHA256SUMS.txt": "37c6321c9c8d89e934cad3c37e9f24cbd2d3b4fac548eb7b11caa745bc186fc8",
    },
    # All four files are mirror only: JSONL flattenings of the 434 original XML files (kept under xml/ in the
    # mirror, checked through the manifest), which live in src/main/resources/corpus/semeval2013-task7/ of:
    urls={},
    source=f"https://github.com/{_SEMEVAL_REPO}/tree/{_SEMEVAL_COMMIT}/src/main/resources/corpus/semeval2013-task7",
    manifest="xml_SHA256SUMS.txt",
    license="CC BY 4.0 per the Hugging Face redistribution (original license text not retrieved); research use",
    citation=(
        "Dzikovska, M., Nielsen, R., Brew, C., Leacock, C., Giampiccolo, D., Bentivogli, L., Clark, P., Dagan, I., "
        "Dang, H.T. (2013). SemEval-2013 Task 7: The Joint Student Response Analysis and 8th Recognizing Textual "
        "Entailment Challenge. *SEM 2013, pp. 263-274. https://aclanthology.org/S13-2045"
    ),
    description="SciEntsBank + Beetle short-answer scoring: question, reference answers, student answer, 2-way label",
    loader="suite.data.loaders:load_semeval",
)

_GSM8K_REPO, _GSM8K_COMMIT = "openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c"
GSM8K = DatasetSpec(
    name="gsm8k",
    folder="gsm8k",
    files={
        "train.jsonl": "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
        "test.jsonl": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
        "example_model_solutions.jsonl": "4bc62db838f8418365d51c627bd66294cbdca9fb7f01519cb13f0dce8c51580b",
        "LICENSE.txt": "86bbb73e855821d7c401912fd4bf82e34313e6e3b6fd6f909f2b6cc9e209a53b",
    },
    urls={
        "train.jsonl": _raw(_GSM8K_REPO, _GSM8K_COMMIT, "grade_school_math/data/train.jsonl"),
        "test.jsonl": _raw(_GSM8K_REPO, _GSM8K_COMMIT, "grade_school_math/data/test.jsonl"),
        "example_model_solutions.jsonl": _raw(
            _GSM8K_REPO, _GSM8K_COMMIT, "grade_school_math/data/example_model_solutions.jsonl"
        ),
        "LICENSE.txt": _raw(_GSM8K_REPO, _GSM8K_COMMIT, "LICENSE"),
    },
    source=f"https://github.com/{_GSM8K_REPO}/tree/{_GSM8K_COMMIT}",
    optional=frozenset({"LICENSE.txt"}),
    license="MIT (Copyright (c) 2021 OpenAI)",
    citation=(
        "Cobbe, K., Kosaraju, V., Bavarian, M., Chen, M., Jun, H., Kaiser, L., Plappert, M., Tworek, J., Hilton, J., "
        "Nakano, R., Hesse, C., Schulman, J. (2021). Training Verifiers to Solve Math Word Problems. arXiv:2110.14168"
    ),
    description="Grade-school math word problems with worked solutions; 5,276 GPT-3 solutions labelled correct",
    loader="suite.data.loaders:load_gsm8k",
)

_PUBMEDQA_REPO, _PUBMEDQA_COMMIT = "pubmedqa/pubmedqa", "1cbae8e92f72f20c8d3747cbb3bf5bc53554d997"
PUBMEDQA = DatasetSpec(
    name="pubmedqa-pqal",
    folder="pubmedqa_pqal",
    files={
        "ori_pqal.json": "8b3276be8942ebbd77f3ddcda12c1749bf0e490045a736fd8438ee40cf37a41d",
        "test_ground_truth.json": "939fe566f09017d13b1ca64d2ddfee0bc2374b366048152997669cccedc44d51",
        "LICENSE.txt": "8e75abc6136be91e5ae66dbb6dda07c8bc9dcc215ed3bc1ba3ae7fab7904777e",
    },
    urls={
        "ori_pqal.json": _raw(_PUBMEDQA_REPO, _PUBMEDQA_COMMIT, "data/ori_pqal.json"),
        "test_ground_truth.json": _raw(_PUBMEDQA_REPO, _PUBMEDQA_COMMIT, "data/test_ground_truth.json"),
        "LICENSE.txt": _raw(_PUBMEDQA_REPO, _PUBMEDQA_COMMIT, "LICENSE"),
    },
    source=f"https://github.com/{_PUBMEDQA_REPO}/tree/{_PUBMEDQA_COMMIT}",
    optional=frozenset({"LICENSE.txt"}),
    license="MIT (Copyright (c) 2019 pubmedqa); contexts are PubMed abstract text",
    citation=(
        "Jin, Q., Dhingra, B., Liu, Z., Cohen, W., Lu, X. (2019). PubMedQA: A Dataset for Biomedical Research "
        "Question Answering. EMNLP-IJCNLP 2019, pp. 2567-2577"
    ),
    description="PubMedQA PQA-L: 1,000 expert-labelled yes/no/maybe questions with abstract contexts and conclusion",
    loader="suite.data.loaders:load_pubmedqa",
)

_S2D_REPO, _S2D_COMMIT = "mistralai/cookbook", "1cf863b8a356d4cd562d1008d71bd63484d7fdd8"
SYMPTOM2DISEASE = DatasetSpec(
    name="symptom2disease",
    folder="symptom2disease",
    files={"Symptom2Disease.csv": "00c14a2f38c041179d24a91de80c4b3a9d105f58982aa52e96a7226ca994dba8"},
    urls={"Symptom2Disease.csv": _raw(_S2D_REPO, _S2D_COMMIT, "data/Symptom2Disease.csv")},
    source="https://www.kaggle.com/datasets/niyarrbarman/symptom2disease (copy in mistralai/cookbook)",
    license="unverified (Apache-2.0 per a Hugging Face re-upload); research/benchmark use with attribution",
    citation="Symptom2Disease, Kaggle, Niyar R. Barman (2023), https://www.kaggle.com/datasets/niyarrbarman/symptom2disease",
    description="1,200 first-person symptom descriptions labelled with one of 24 diagnoses (47 exact duplicates)",
    loader="suite.data.loaders:load_symptom2disease",
)

_MTS_REPO, _MTS_COMMIT = "yngvemikkelsen/clinical-rag-retrieval-benchmark", "7654241a1056e1da3baa076524cbbc9130ff28cf"
MTSAMPLES = DatasetSpec(
    name="mtsamples",
    folder="mtsamples_subset500",
    files={"mtsamples_sample.csv": "7aa453cc3214bd908c18a97d02ee8796954d940e909b9e0a6803069736810f77"},
    urls={"mtsamples_sample.csv": _raw(_MTS_REPO, _MTS_COMMIT, "data/mtsamples_sample.csv")},
    source=f"https://github.com/{_MTS_REPO}/tree/{_MTS_COMMIT} (sample of the Kaggle 'Medical Transcriptions')",
    license="CC0 (Kaggle 'Medical Transcriptions'); mtsamples.com terms of service",
    citation="MTSamples (https://mtsamples.com), 'Medical Transcriptions' by Tara Boyle, Kaggle",
    description="500 de-identified medical transcriptions, 35 specialties, each with a short description",
    loader="suite.data.loaders:load_mtsamples",
)

_IU_REPO = "SaadSubhaniTheProgrammerVersion/Textual-Report-Generation-from-Chest-X-rays-Indiana-Dataset"
_IU_COMMIT = "6b316b7cd51c966d9259b334650fca458437507e"
IU_XRAY = DatasetSpec(
    name="iu-xray-reports",
    folder="iu_xray_openi_reports",
    files={
        "indiana_reports.csv": "fd718e074451e93effedd868ca8995d2495e58e85878e08853f2dd35810f2149",
        "indiana_projections.csv": "7af9c8a6b4f8ae695c654ecd4208edd193a37892a5607b7cb9e609dc997e6b7a",
    },
    urls={
        "indiana_reports.csv": _raw(_IU_REPO, _IU_COMMIT, "indiana_reports.csv"),
        "indiana_projections.csv": _raw(_IU_REPO, _IU_COMMIT, "indiana_projections.csv"),
    },
    source=f"https://github.com/{_IU_REPO}/tree/{_IU_COMMIT} (Kaggle CSV conversion of the Open-i NLMCXR reports)",
    license="CC BY-NC-ND 4.0 (Open-i IU collection, per secondary sources): non-commercial, redistribute unmodified",
    citation=(
        "Demner-Fushman, D., Kohli, M.D., Rosenman, M.B., Shooshan, S.E., Rodriguez, L., Antani, S., Thoma, G.R., "
        "McDonald, C.J. (2016). Preparing a collection of radiology examinations for distribution and retrieval. "
        "J Am Med Inform Assoc 23(2):304-310"
    ),
    description="3,851 chest X-ray reports (indication, findings, impression, MeSH) and 7,466 image projections",
    loader="suite.data.loaders:load_iu_xray",
)

_BDDX_REPO, _BDDX_COMMIT = "JinkyuKimUCB/BDD-X-dataset", "0a724c80806a58e96c89caf0116740af5f74fcf0"
_BDDX_HEAD = "b93cc0f4e13aa2012a251bda9afb12b56e817189"  # the annotation files were removed after _BDDX_COMMIT
BDDX = DatasetSpec(
    name="bdd-x",
    folder="bdd_x_explanations",
    files={
        "BDD-X-Annotations_v1.csv": "3e6053831715695e0bed87a752c4142d6b0bf106d3303e5a23755d8e46e20565",
        "train.txt": "349dd819151f877db90a5924919aa12231a08dc3966e99acb1f96341ecb1f09b",
        "val.txt": "1e943bd62ff8c3ff481485c876ee3da4832d6c0a70e782e7ba40ce0290869636",
        "test.txt": "45c40166f54c0e870b448a6934e4f6dbe7c853825d9854046a1a5a5ddc90ffdb",
        "LICENSE.txt": "4ca4e58e7f13181bcdf2c5272fe067f3068d4e401aa26bec039d5879aa218097",
        # Mirror only: one row per segment, rebuilt by the loader from the original CSV when absent.
        "bddx_segments_flat.csv": "b9f192ed9ab68ba405a0265fcbbc4406fe95f3708d2e213682cbddbc0e033061",
    },
    urls={
        "BDD-X-Annotations_v1.csv": _raw(_BDDX_REPO, _BDDX_COMMIT, "BDD-X-Dataset/BDD-X-Annotations_v1.csv"),
        "train.txt": _raw(_BDDX_REPO, _BDDX_COMMIT, "BDD-X-Dataset/train.txt"),
        "val.txt": _raw(_BDDX_REPO, _BDDX_COMMIT, "BDD-X-Dataset/val.txt"),
        "test.txt": _raw(_BDDX_REPO, _BDDX_COMMIT, "BDD-X-Dataset/test.txt"),
        "LICENSE.txt": _raw(_BDDX_REPO, _BDDX_HEAD, "LICENSE"),
    },
    source=f"https://github.com/{_BDDX_REPO}/tree/{_BDDX_COMMIT}",
    optional=frozenset({"LICENSE.txt", "bddx_segments_flat.csv"}),
    license="UC Berkeley copyright notice: educational, research and not-for-profit use; keep LICENSE.txt with it",
    citation=(
        "Kim, J., Rohrbach, A., Darrell, T., Canny, J., Akata, Z. (2018). Textual Explanations for Self-Driving "
        "Vehicles. ECCV 2018"
    ),
    description="26,539 driving action descriptions with justifications ('because ...'), train/val/test by video",
    loader="suite.data.loaders:load_bddx",
)

_RADLABELS_WHEEL = "radlabels-0.2.0-py3-none-any.whl"
RADLABELS = DatasetSpec(
    name="radlabels-synthetic",
    folder="radlabels_synthetic",
    files={_RADLABELS_WHEEL: "80af1df92ffd39925563079b9efed283b85196436f152cb33025ece42371fade"},
    # The package's wheel from PyPI, read as a zip: its 1,000 bundled synthetic reports and their labels. (The
    # package itself is not installed: it pins torch < 2.5.)
    urls={
        _RADLABELS_WHEEL: "https://files.pythonhosted.org/packages/46/2c/"
        f"3925a4c90b86a9e02216ed124e4952089650250c11ffc55f2cc343a4e495/{_RADLABELS_WHEEL}"
    },
    source="https://pypi.org/project/radlabels/0.2.0/ (https://github.com/jbdel/radlabels)",
    license="MIT (the radlabels package, its synthetic sample reports and labels included)",
    citation="Delbrouck, J.-B. (2026). Reconfigurable Radiology Labels Without Relabeling. arXiv:2607.06597",
    description="1,000 synthetic chest X-ray reports labelled present / absent / uncertain over 49 findings",
    loader="suite.data.loaders:load_radlabels",
    in_mirror=False,
)
