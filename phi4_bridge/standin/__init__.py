"""A stand-in for the microsoft/phi-4-multimodal ZeroGPU Space, served by a real gradio 6 server.

The real Space cannot be reached from the project's machines, so the bridge, the app, the tests and the
benchmarks talk to this one over loopback instead. It speaks the Space's wire protocol as described in
shared/space-protocol.md (Gradio 5 "messages" history, fn 10 / fn 11, trigger 8) and the Hub's token
endpoints, and it can be told to misbehave the ways the real one does (see ``zerogpu.FAULTS``).

Modules: ``reply`` (what the fake model answers), ``zerogpu`` (tokens, quota, faults, counters),
``chat`` (the Gradio-5-shaped chatbot component), ``server`` (Blocks + Hub routes + control routes),
``launcher`` (run one as a subprocess), ``__main__`` (the CLI).
"""
