"""What the driving pack asks a vision-language teacher about a frame: VERDI's perception -> prediction -> planning.

VERDI (Feng et al., 2025) distils a VLM's reasoning into a small planner: the VLM is asked about a rendered driving
frame in a fixed order (perception: the relevant agents, lanes and distances; prediction: what they will do;
planning: the ego action and why); each section's embedding is a target for the planner's matching stage.
"""

from __future__ import annotations

from suite.teachers.vision_language import VisionTask

DRIVING_TASK = VisionTask(
    scene="The image shows a driving scene around the ego vehicle.",
    instruction=(
        "Reason about what the ego vehicle should do next, in this order, and answer with exactly three labelled "
        "sections and nothing else:\n"
        "Perception: the agents, lanes, signals and distances that matter for the ego vehicle's next move.\n"
        "Prediction: what each of those agents will do in the next few seconds.\n"
        "Planning: the ego vehicle's action and why."
    ),
    sections=("perception", "prediction", "planning"),
)
