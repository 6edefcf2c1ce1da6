"""Evaluation: classification and retrieval metrics, representation analyses, figures and a Markdown report."""
