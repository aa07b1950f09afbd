"""p2p: a peer-to-peer messaging agent for businesses and their customers."""

__version__ = "0.1.0"
