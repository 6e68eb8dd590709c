"""Generation backends: llama.cpp (embedded default), transformers, vLLM, OpenAI-compatible HTTP."""

from inpars.generation.base import BACKENDS, Backend, Generation, SamplingParams, get_backend

__all__ = ["BACKENDS", "Backend", "Generation", "SamplingParams", "get_backend"]
