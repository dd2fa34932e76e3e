"""Teachers for distillation and the store every backend writes through.

Backends: ``"hf"`` (a local transformers/timm model), ``"openai"`` (an OpenAI-compatible server), and the store
itself (:class:`StoredTeacher`, precomputed outputs). Run any of them through :meth:`TeacherOutputStore.run` so that
each answer is computed once and kept.
"""

from suite.registry import Registry
from suite.teachers.base import Teacher, TeacherBatchError, TeacherOutput
from suite.teachers.hf import HFTeacher
from suite.teachers.openai_compat import OpenAICompatibleTeacher
from suite.teachers.store import StoredTeacher, TeacherOutputStore, store_key
from suite.teachers.vision_language import HFVisionLanguageTeacher, OpenAICompatibleVLMTeacher

TEACHERS = Registry("teacher")
TEACHERS.register("hf", "suite.teachers.hf:HFTeacher", "a local Hugging Face or timm model (offline)")
TEACHERS.register(
    "openai", "suite.teachers.openai_compat:OpenAICompatibleTeacher", "an OpenAI-compatible HTTP server (vLLM, ...)"
)
TEACHERS.register(
    "openai-vlm",
    "suite.teachers.vision_language:OpenAICompatibleVLMTeacher",
    "driving rationales (perception, prediction, planning) from a VLM behind an OpenAI-compatible server",
)
TEACHERS.register(
    "hf-vlm",
    "suite.teachers.vision_language:HFVisionLanguageTeacher",
    "driving rationales (perception, prediction, planning) from a local Hugging Face vision-language model",
)


def list_teachers() -> list[str]:
    return TEACHERS.names()


__all__ = [
    "TEACHERS",
    "HFTeacher",
    "HFVisionLanguageTeacher",
    "OpenAICompatibleTeacher",
    "OpenAICompatibleVLMTeacher",
    "StoredTeacher",
    "Teacher",
    "TeacherBatchError",
    "TeacherOutput",
    "TeacherOutputStore",
    "list_teachers",
    "store_key",
]
