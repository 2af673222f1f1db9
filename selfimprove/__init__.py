"""selfimprove: LLM self-improvement recipes (STaR, ReST-EM, ...) as resumable pipelines."""

__version__ = "0.1.0"
