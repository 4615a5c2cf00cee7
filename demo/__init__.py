"""Demo data: realistic CRM, billing and usage extracts with a truth oracle."""

from demo.generator import GenerationSummary, generate

__all__ = ["GenerationSummary", "generate"]
