"""(g) A ``gr.Interface`` with an image and a text input and no chatbot: a Space with no chat, for the error
tests (the bridge must name what it found and what is missing)."""

import gradio as gr
import spacekit as kit


def caption(image, question):
    return kit.describe([question], [image])


demo = gr.Interface(caption, [gr.Image(type="filepath", label="Image"), gr.Textbox(label="Question")],
                    gr.Textbox(label="Answer"))

if __name__ == "__main__":
    kit.launch(demo)
