"""Demo data: realistic CRM, billing and usage extracts with a truth oracle, for two businesses."""

from demo.generator import BUSINESSES, DEFAULT_BUSINESS, DemoBusiness, GenerationSummary, generate

__all__ = ["BUSINESSES", "DEFAULT_BUSINESS", "DemoBusiness", "GenerationSummary", "generate"]
