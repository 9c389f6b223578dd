"""(e) A textbox submit and a "Send" button both start the chat (``gr.on``); the bot step also takes a hidden
system-prompt Textbox and a Dropdown. The user step is queued, as gradio's default."""

import gradio as gr
import spacekit as kit


def add_message(history, message):
    for path in message["files"]:
        history.append({"role": "user", "content": {"path": path}})
    if message["text"]:
        history.append({"role": "user", "content": message["text"]})
    return history, gr.MultimodalTextbox(value=None, interactive=False)


def bot(history, system_prompt, style):
    turn, earlier = kit.turn_of(history)
    reply = kit.describe_messages(turn, earlier, {"System prompt": f'"{system_prompt}"', "Style": style})
    kit.count_run("bot", reply=reply)
    history.append({"role": "assistant", "content": ""})
    for so_far in kit.chunks(reply):
        history[-1]["content"] = so_far
        yield history


with gr.Blocks() as demo:
    system_prompt = gr.Textbox("You are Phi-4, a helpful assistant.", label="System prompt", visible=False)
    chatbot = gr.Chatbot(elem_id="chatbot", **kit.MESSAGES)
    with gr.Row():
        box = gr.MultimodalTextbox(file_count="multiple", show_label=False, scale=4)
        send = gr.Button("Send", scale=1)
    style = gr.Dropdown(["short", "detailed"], value="short", label="Style")
    user = gr.on([box.submit, send.click], add_message, [chatbot, box], [chatbot, box])
    answered = user.then(bot, [chatbot, system_prompt, style], chatbot)
    answered.then(lambda: gr.MultimodalTextbox(interactive=True), None, [box])

if __name__ == "__main__":
    kit.launch(demo)
