"""pocketstack: the OpenStack IaaS cloud as one lean Python project."""

__version__ = "0.1.0"
