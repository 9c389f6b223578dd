"""A real gradio Space with no chat: a ``gr.Interface`` taking an image and a text, answering text.

``python tests/doctor_spaces/interface_app.py PORT``: what ``doctor`` must refuse with a plain sentence and exit 3.
"""

import sys

import gradio as gr


def caption(image: object, question: str) -> str:
    return f"an image and {question!r}"


demo = gr.Interface(caption, [gr.Image(type="filepath"), gr.Textbox(label="Question")], gr.Textbox())

if __name__ == "__main__":
    demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]))
