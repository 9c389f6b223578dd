"""(f) Like gradio's multimodal demo (a), but the bot step yields strings (the reply so far) into a Textbox, and
only a last ``.then`` step writes the finished reply into the chatbot. No step streams the chatbot."""

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
    yield from kit.chunks(reply)


def to_chat(history, reply):
    return history + [{"role": "assistant", "content": reply}], "", gr.MultimodalTextbox(interactive=True)


with gr.Blocks() as demo:
    chatbot = gr.Chatbot(elem_id="chatbot", **kit.MESSAGES)
    box = gr.MultimodalTextbox(interactive=True, file_count="multiple", show_label=False)
    streaming = gr.Textbox(label="Reply", interactive=False)
    user = box.submit(add_message, [chatbot, box], [chatbot, box])
    answered = user.then(bot, chatbot, streaming)
    answered.then(to_chat, [chatbot, streaming], [chatbot, streaming, box])

if __name__ == "__main__":
    kit.launch(demo)
