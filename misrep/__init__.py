"""misrep: mutual-information representation learning, derived in notebooks."""
__version__ = "0.1.0"
