"""The gateway process: the Flight SQL wire (``flight``), the query pipeline (``query``) and its wiring (``app``)."""

__version__ = "0.1.0"
