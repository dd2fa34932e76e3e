"""The chest X-ray finding vocabulary the radiology pack checks outputs with: CheXpert's observations (Irvin et al.
2019; "No Finding" is the absence of all of them) plus emphysema, each with the phrases radiologists write for it,
and the map from radlabels' 49 labels onto them, which the extractor is validated against."""

from __future__ import annotations

from suite.eval.findings import FindingExtractor

CHEST_FINDINGS: dict[str, list[str]] = {
    "enlarged_cardiomediastinum": [
        "enlarged cardiomediastinum", "mediastinal widening", "widened mediastinum", "widening of the mediastinum",
        "enlarged mediastinum", "mediastinal enlargement", "enlarged cardiomediastinal silhouette",
    ],
    "cardiomegaly": [
        "cardiomegaly", "enlarged heart", "heart is enlarged", "heart size is enlarged", "enlarged cardiac silhouette",
        "cardiac silhouette is enlarged", "cardiac enlargement", "enlargement of the cardiac silhouette",
        "heart size remains enlarged", "heart remains enlarged", "cardiac silhouette remains enlarged",
        "enlarged cardiac contour", "cardiac size is enlarged", "enlargement of the heart",
    ],
    "lung_opacity": [
        "opacity", "opacities", "opacification", "airspace disease", "air space disease", "airspace opacity",
        "infiltrate", "infiltrates", "ground glass", "haziness", "interstitial markings", "reticular",
        "interstitial prominence", "scarring",
    ],
    "lung_lesion": [
        "nodule", "nodules", "mass", "masses", "lesion", "lesions", "nodular density", "nodular opacity",
        "nodular opacities", "granuloma", "granulomas", "tumor", "neoplasm", "metastasis", "metastases",
    ],
    "edema": [
        "edema", "pulmonary vascular congestion", "vascular congestion", "congestion", "congestive heart failure",
        "chf", "kerley b lines", "fluid overload", "cephalization",
    ],
    "consolidation": ["consolidation", "consolidations", "consolidative"],
    "pneumonia": ["pneumonia", "pneumonias", "infection", "infectious process", "bronchopneumonia"],
    "atelectasis": ["atelectasis", "atelectatic", "collapse", "volume loss", "subsegmental atelectasis"],
    "pneumothorax": ["pneumothorax", "pneumothoraces", "ptx"],
    "pleural_effusion": [
        "pleural effusion", "pleural effusions", "effusion", "effusions", "pleural fluid",
        "blunting of the costophrenic", "costophrenic angle blunting", "blunted costophrenic",
    ],
    "pleural_other": ["pleural thickening", "pleural plaque", "pleural plaques", "fibrothorax", "pleural scarring"],
    "fracture": ["fracture", "fractures", "fractured", "compression deformity"],
    "support_devices": [
        "tube", "tubes", "catheter", "picc", "line", "lines", "pacemaker", "pacer", "wires", "drain", "port",
        "sternotomy wires", "clips", "stent", "valve replacement", "defibrillator", "lead", "leads",
    ],
    "emphysema": ["emphysema", "emphysematous", "hyperinflation", "hyperinflated", "hyperexpanded", "copd",
                  "chronic obstructive"],
}  # fmt: skip
DEGREES = ("mildly", "moderately", "markedly", "severely", "slightly", "massively")


def _with_degrees(phrases: list[str]) -> list[str]:
    """Each "... enlarged ..." phrase also with a degree adverb before "enlarged" ("heart is mildly enlarged")."""
    return phrases + [p.replace("enlarged", f"{d} enlarged") for p in phrases if "enlarged" in p for d in DEGREES]


CHEST_FINDINGS = {finding: _with_degrees(phrases) for finding, phrases in CHEST_FINDINGS.items()}

# radlabels (Delbrouck 2026) labels -> the observation above they assert.
RADLABELS_MAP: dict[str, str] = {
    "enlarged_cardiomediastinum": "enlarged_cardiomediastinum",
    "cardiomegaly": "cardiomegaly",
    "lung_opacity": "lung_opacity", "air_space_opacity": "lung_opacity", "ground_glass_opacity": "lung_opacity",
    "infiltration": "lung_opacity", "interstitial_thickening": "lung_opacity",
    "lung_nodule_or_mass": "lung_lesion", "lung_lesion": "lung_lesion",
    "pulmonary_edema": "edema", "pulmonary_congestion_pulmonary_venous_congestion": "edema",
    "consolidation": "consolidation",
    "pneumonia": "pneumonia",
    "atelectasis": "atelectasis", "lobar_segmental_collapse": "atelectasis",
    "whole_lung_or_majority_collapse": "atelectasis",
    "pneumothorax": "pneumothorax",
    "pleural_effusion": "pleural_effusion",
    "pleural_thickening": "pleural_other", "pleural_other": "pleural_other",
    "fracture_generic": "fracture", "acute_rib_fracture": "fracture", "non_acute_rib_fracture": "fracture",
    "endotracheal_tube": "support_devices", "enteric_tube": "support_devices",
    "central_venous_catheter": "support_devices", "intercostal_drain": "support_devices",
    "pacemaker_electronic_cardiac_device_or_wires": "support_devices", "tracheostomy_tube": "support_devices",
    "support_devices_generic": "support_devices", "implantable_electronic_device": "support_devices",
    "emphysema": "emphysema", "hyperinflation": "emphysema",
}  # fmt: skip


def chest_extractor() -> FindingExtractor:
    return FindingExtractor(CHEST_FINDINGS)


HISTORY_SECTIONS = (
    "INDICATION",
    "HISTORY",
    "COMPARISON",
    "EXAMINATION",
    "TECHNIQUE",
    "CLINICAL",
    "REASON",
    "WET READ",
)


def report_body(text: str) -> str:
    """The findings and impression of a free-text report: drops indication / history / comparison / technique
    paragraphs (a header line and its lines up to the next blank line), which name findings the study is checked
    for rather than found."""
    kept, dropping = [], False
    for line in text.splitlines():
        head = line.strip().upper()
        if head.startswith(HISTORY_SECTIONS):
            dropping = True
        elif not head or head.startswith(("FINDINGS", "IMPRESSION", "CONCLUSION")):
            dropping = False
        if not dropping:
            kept.append(line)
    return "\n".join(kept)
