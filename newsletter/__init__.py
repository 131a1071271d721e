"""Newsletter: Markdown articles in, a responsive email out, mailed to every subscriber."""

__version__ = "0.1.0"
