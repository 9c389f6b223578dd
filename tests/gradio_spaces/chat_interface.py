"""(c) ``gr.ChatInterface(multimodal=True)`` with ``additional_inputs`` (a slider and a textbox), each gradio
generation's default history format (tuples on 4 and 5, messages on 6). The function yields strings."""

import gradio as gr
import spacekit as kit


def respond(message, history, temperature, system_prompt):
    files = kit.paths(message["files"])
    if history and isinstance(history[0], dict):  # messages
        earlier = sum(1 for m in history if m.get("role") == "assistant")
    else:  # tuples: a file of an earlier turn is a pair of its own with no reply
        earlier = sum(1 for pair in history if pair[1] is not None)
    options = {"Temperature": f"{temperature:g}", "System prompt": f'"{system_prompt}"'}
    reply = kit.describe([message["text"]], files, options, earlier)
    kit.count_run("bot", reply=reply)
    yield from kit.chunks(reply)


demo = gr.ChatInterface(
    respond,
    multimodal=True,
    additional_inputs=[gr.Slider(0.0, 2.0, value=0.8, step=0.1, label="Temperature"),
                       gr.Textbox(value="You are a helpful assistant.", label="System prompt")],
)

if __name__ == "__main__":
    kit.launch(demo)
