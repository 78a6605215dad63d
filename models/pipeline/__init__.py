"""Render synthetic street scenes, train, export, quantize, evaluate and package the shipped models.

Training needs the ``train`` extra (PyTorch); everything else uses the agent's own dependencies.
"""
