"""Juggernaut HQ: the operator control plane of an autonomous AI-agent system."""

__version__ = "0.1.0"
