"""The chat: ``handlers`` (``ChatService`` and the chat's events), ``chat_values`` (pure helpers on the chatbot
value), ``chatbot`` (gradio's Chatbot, cheaper to stream into), ``pacing`` (at most N updates a second), ``export``
(JSON and Markdown downloads)."""
