"""(d) A 2024-style gradio 4 Space: a plain Textbox, a "Submit" button, separate ``gr.Image`` and ``gr.Audio``
inputs and a tuples ``gr.Chatbot`` (gradio 4 and 5 only: gradio 6 has no tuples). One step answers, streaming
the whole history; a ``.then`` clears the inputs."""

import gradio as gr
import spacekit as kit


def respond(message, image, audio, history, max_new_tokens):
    reply = kit.describe([message], [image, audio], {"Max new tokens": f"{max_new_tokens:g}"}, len(history))
    kit.count_run("bot", reply=reply)
    history = history + [[message, ""]]
    for so_far in kit.chunks(reply):
        history[-1][1] = so_far
        yield history


with gr.Blocks() as demo:
    gr.Markdown("# Phi-4-multimodal")
    with gr.Row():
        with gr.Column():
            image = gr.Image(type="filepath", label="Image")
            audio = gr.Audio(type="filepath", label="Audio")
            max_new_tokens = gr.Slider(1, 2048, value=256, step=1, label="Max new tokens")
        with gr.Column():
            chatbot = gr.Chatbot(label="Chat")
            box = gr.Textbox(label="Message", placeholder="Ask about the image or the audio")
            submit = gr.Button("Submit", variant="primary")
    submit.click(respond, [box, image, audio, chatbot, max_new_tokens], [chatbot]).then(
        lambda: ("", None, None), None, [box, image, audio])

if __name__ == "__main__":
    kit.launch(demo)
