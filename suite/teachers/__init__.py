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

TEACHERS = Registry("teacher")
TEACHERS.register("hf", "suite.teachers.hf:HFTeacher", "a local Hugging Face or timm model (offline)")
TEACHERS.register(
    "openai", "suite.teachers.openai_compat:OpenAICompatibleTeacher", "an OpenAI-compatible HTTP server (vLLM, ...)"
)


def list_teachers() -> list[str]:
    return TEACHERS.names()


__all__ = [
    "TEACHERS",
    "HFTeacher",
    "OpenAICompatibleTeacher",
    "StoredTeacher",
    "Teacher",
    "TeacherBatchError",
    "TeacherOutput",
    "TeacherOutputStore",
    "list_teachers",
    "store_key",
]
