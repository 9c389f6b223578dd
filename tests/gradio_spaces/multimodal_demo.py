"""(a) gradio's own multimodal chatbot demo (``demo/chatbot_multimodal``), as Space authors copy it: the user step
``add_message`` is queued (gradio's default), a ``.then`` bot step streams the whole history into the chatbot,
a last ``.then`` re-enables the textbox (failing while a test asks it to: ``kit.failing_after_reply``). No
options."""

import gradio as gr
import spacekit as kit


def add_message(history, message):
    for path in message["files"]:
        history.append({"role": "user", "content": {"path": path}})
    if message["text"]:
        history.append({"role": "user", "content": message["text"]})
    return history, gr.MultimodalTextbox(value=None, interactive=False)


def bot(history):
    turn, earlier = kit.turn_of(history)
    reply = kit.describe_messages(turn, earlier)
    kit.count_run("bot", reply=reply)
    history.append({"role": "assistant", "content": ""})
    for so_far in kit.chunks(reply):
        history[-1]["content"] = so_far
        yield history


with gr.Blocks() as demo:
    chatbot = gr.Chatbot(elem_id="chatbot", **kit.MESSAGES)
    box = gr.MultimodalTextbox(interactive=True, file_count="multiple", placeholder="Enter message or upload file...",
                               show_label=False)
    chat_msg = box.submit(add_message, [chatbot, box], [chatbot, box])
    bot_msg = chat_msg.then(bot, chatbot, chatbot, api_name="bot_response")
    bot_msg.then(kit.failing_after_reply(lambda: gr.MultimodalTextbox(interactive=True)), None, [box])

if __name__ == "__main__":
    kit.launch(demo)
