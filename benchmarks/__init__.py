"""Benchmarks: what the mirror costs on top of the Space, side by side, up to 100 visitors.

``python -m benchmarks [--quick] [--out DIR] [--space-url URL --hub-url URL]``. Four paths against one Space in
one run: gradio_client straight to the Space (the reference), the known provider's request sequence, the bridge
in-process, and the whole app (gradio_client -> app.py -> bridge -> Space). See ``run.py`` for the phases.
"""
