#!/usr/bin/env python3
"""Top-level entry, the same as ``python -m pipeline``."""
from pipeline.cli import main

if __name__ == "__main__":
    main()
