"""A stand-in for the microsoft/phi-4-multimodal ZeroGPU Space, served by a real gradio 6 server.

The real Space cannot be reached from the project's machines, so the bridge, the app, the tests and the
benchmarks talk to this one over loopback instead. It speaks the Space's wire protocol as described in
docs/standin.md (a Gradio 5 "messages" history) and the Hub's token
endpoints, and it can be told to misbehave the ways the real one does (see ``zerogpu.FAULTS``).

Layouts (``--layout``): ``classic`` (fn 10 / 11, trigger 8: the known client's), ``official`` (the shape
evidence of the real Space's code points to: user step, State, sampling sliders), ``chatinterface`` (a
``gr.ChatInterface(multimodal=True)``); see ``space.py``.

Modules: ``reply`` (what the fake model answers), ``zerogpu`` (tokens, quota, faults, counters),
``chat`` (the Gradio-5-shaped chatbot component), ``space`` (shared bot-step helpers, the browser view, the
classic layout), ``official`` and ``chatinterface`` (the other layouts), ``server`` (Blocks + Hub routes +
control routes), ``launcher`` (run one as a subprocess), ``__main__`` (the CLI).

Nothing here imports ``phi4_bridge`` (an import contract checks it): the stand-in shares no code with the
bridge, so a bug on one side cannot hide the same bug on the other.
"""
