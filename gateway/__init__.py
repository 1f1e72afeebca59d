"""OneBot Gateway: a OneBot 11 daemon with NapCat's network layer, done right."""

__version__ = "0.1.0"
