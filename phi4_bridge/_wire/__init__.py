"""The bridge's wire internals, private: how a turn travels to a gradio Space and back.

``protocol`` (the chat in ``/config``, ``/run/predict``, the queue's join, its event stream, cancel), ``sse`` (the event
stream's parser), ``stream`` (its messages -> the bridge's events), ``upload`` (files to ``/upload``), ``token``
(ZeroGPU tokens from the Hub), ``values`` (a step's outputs written back into the page's values).

Nothing outside ``phi4_bridge`` should import these: their names and signatures change with the Space's protocol.
The public surface is ``phi4_bridge`` itself (``Phi4Bridge``, ``Job``, the events and the errors).
"""
