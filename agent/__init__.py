"""edge-agent: the gateway daemon for smart-city street management."""

__version__ = "0.1.0"
