"""How the /config files here were recorded: small chat Spaces of three shapes, run on real gradio 4.44.1, 5.20.0
and 6.31.0 (each in its own venv, pins in tests/gradio_spaces/requirements-gradio*.txt). ``python record.py SHAPE PORT``
launches one and prints its /config; ``python record.py SHAPE serve PORT`` keeps it serving. Not a test: the
tests read the recorded files (``tests/test_chain_configs.py``); ``tests/test_chain_live.py`` serves two shapes
on the test venv's gradio 6."""

import json
import sys
import time
import urllib.request

import gradio as gr

V = int(gr.__version__.split(".")[0])
MESSAGES = {} if V >= 6 else {"type": "messages"}  # gradio 6 has only messages


def multimodal_demo(queue_user: bool = True) -> gr.Blocks:
    """gradio's own multimodal chatbot demo: the user step queued (gradio's default), the bot step streams."""
    def add_message(history, message):
        for x in message["files"]:
            history.append({"role": "user", "content": {"path": x}})
        if message["text"]:
            history.append({"role": "user", "content": message["text"]})
        return history, gr.MultimodalTextbox(value=None, interactive=False)

    def bot(history, temperature):
        text = f"got {len(history)} messages; temperature {temperature}"
        history.append({"role": "assistant", "content": ""})
        for word in text.split(" "):
            history[-1]["content"] += word + " "
            time.sleep(0.05)  # a visible stream: each word its own event
            yield history

    with gr.Blocks() as demo:
        chatbot = gr.Chatbot(elem_id="chatbot", **MESSAGES)
        box = gr.MultimodalTextbox(interactive=True, file_types=["image", "audio"], show_label=False)
        temp = gr.Slider(0, 2, value=0.7, label="Temperature")
        msg = box.submit(add_message, [chatbot, box], [chatbot, box], queue=queue_user)
        msg.then(bot, [chatbot, temp], chatbot, api_name="bot_response").then(
            lambda: gr.MultimodalTextbox(interactive=True), None, [box])
        chatbot.like(lambda x: None, None, None)
    return demo


def textbox_button_tuples() -> gr.Blocks:
    """2024's ZeroGPU demos: a tuples chatbot, a Textbox and a Submit button (gr.on), separate Image and Audio
    inputs, a hidden system prompt; a Model dropdown no step reads."""
    def add_text(history, text, image, audio):
        return history + [[text, None]], gr.update(value="", interactive=False)

    def bot(history, image, audio, system):
        history[-1][1] = ""
        for ch in f"saw {history[-1][0]} image={bool(image)} audio={bool(audio)} system={system}":
            history[-1][1] += ch
            yield history

    with gr.Blocks() as demo:
        chatbot = gr.Chatbot()
        with gr.Row():
            txt = gr.Textbox(show_label=False, placeholder="Ask")
            btn = gr.Button("Submit")
        image = gr.Image(type="filepath")
        audio = gr.Audio(type="filepath")
        system = gr.Textbox("You are kind", label="System prompt", visible=False)
        gr.Dropdown(["small", "large"], value="small", label="Model")
        clear = gr.Button("Clear")
        gr.on([txt.submit, btn.click], add_text, [chatbot, txt, image, audio], [chatbot, txt], queue=False).then(
            bot, [chatbot, image, audio, system], chatbot).then(
            lambda: gr.update(interactive=True), None, [txt], queue=False)
        clear.click(lambda: None, None, chatbot, queue=False)
    return demo


def chatinterface() -> gr.ChatInterface:
    def fn(message, history, temperature, system):
        text = f"{message['text']} files={len(message['files'])} t={temperature} s={system} h={len(history)}"
        for i in range(1, len(text) + 1, 5):
            yield text[:i]
        yield text

    extra = [gr.Slider(0, 1, 0.5, label="Temperature"), gr.Textbox("sys", label="System")]
    return gr.ChatInterface(fn, multimodal=True, additional_inputs=extra, **MESSAGES)


def silent() -> gr.Blocks:
    """The demo's chain whose bot step streams the chat back without adding a reply (a broken Space)."""
    def add_message(history, message):
        return history + [{"role": "user", "content": message["text"]}], None

    def bot(history):
        yield history

    with gr.Blocks() as demo:
        chatbot = gr.Chatbot(**MESSAGES)
        box = gr.MultimodalTextbox()
        box.submit(add_message, [chatbot, box], [chatbot, box]).then(bot, chatbot, chatbot)
    return demo


SHAPES = {"multimodal": multimodal_demo, "silent": silent, "tuples": textbox_button_tuples,
          "chatinterface": chatinterface}

if __name__ == "__main__":
    app = SHAPES[sys.argv[1]]()
    if sys.argv[2] == "serve":
        app.queue().launch(server_port=int(sys.argv[3]), server_name="127.0.0.1")
    else:
        app.queue().launch(server_port=int(sys.argv[2]), server_name="127.0.0.1", prevent_thread_lock=True)
        print(json.dumps(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/config").read())))
        app.close()
