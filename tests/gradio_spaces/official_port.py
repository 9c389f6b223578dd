"""(b) The Phi-4-multimodal demo as its public OpenVINO port writes it: the
user step ``check_messages(history, message, audio)`` runs unqueued, writes each file into the history as a
titled entry and counts the session's turns in a ``gr.State``; the bot step takes the chatbot, that State and
the sampling sliders, and finds the files only through the titled entries. The textbox takes images only: audio
goes into the separate ``gr.Audio``. A last unqueued step re-enables the textbox (failing while a test asks it
to: ``kit.failing_after_reply``)."""

import gradio as gr
import spacekit as kit

SLIDERS = [("Top-p", 0.0, 1.0, 0.05, 0.95), ("Top-k", 1, 100, 1, 50), ("Temperature", 0.0, 2.0, 0.1, 0.8),
           ("Repetition penalty", 1.0, 2.0, 0.05, 1.05), ("Max new tokens", 1, 4096, 1, 512)]


def check_messages(history, message, audio, turns):
    if not message["text"] and not message["files"] and not audio:
        raise gr.Error("Message is empty")
    for path in message["files"]:
        history.append({"role": "user", "content": kit.file_content(path), "metadata": {"title": "image"}})
    if audio:
        history.append({"role": "user", "content": kit.file_content(audio), "metadata": {"title": "audio"}})
    if message["text"]:
        history.append({"role": "user", "content": message["text"], "metadata": {}})
    return history, gr.MultimodalTextbox(value=None, interactive=False), None, turns + 1


def bot(history, turns, top_p, top_k, temperature, repetition_penalty, max_new_tokens):
    turn, earlier = kit.turn_of(history)
    titled = [m for m in turn if (m.get("metadata") or {}).get("title") in ("image", "audio")]
    texts = [v for m in turn if m not in titled for kind, v in kit.pieces(m.get("content")) if kind == "text"]
    files = [(m["metadata"]["title"], v) for m in titled for kind, v in kit.pieces(m.get("content")) if kind == "file"]
    values = [top_p, top_k, temperature, repetition_penalty, max_new_tokens]
    options = {label: f"{value:g}" for (label, *_), value in zip(SLIDERS, values)}
    reply = kit.describe(texts, [], options, earlier, [f"session turns {turns}"],
                         described=[kit.titled_part(title, path) for title, path in files])
    kit.count_run("bot", reply=reply)
    history.append({"role": "assistant", "content": ""})
    for so_far in kit.chunks(reply):
        history[-1]["content"] = so_far
        yield history


with gr.Blocks() as demo:
    turns = gr.State(0)
    chatbot = gr.Chatbot(label="Phi-4-multimodal", elem_id="chatbot", **kit.MESSAGES)
    box = gr.MultimodalTextbox(interactive=True, file_types=["image"], placeholder="Enter message or upload file...",
                               show_label=False)
    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio")
    with gr.Accordion("Sampling", open=False):
        sliders = [gr.Slider(minimum=lo, maximum=hi, step=step, value=value, label=label, interactive=True)
                   for label, lo, hi, step, value in SLIDERS]
    user = box.submit(check_messages, [chatbot, box, audio, turns], [chatbot, box, audio, turns], queue=False)
    answered = user.then(bot, [chatbot, turns, *sliders], chatbot)
    answered.then(kit.failing_after_reply(lambda: gr.MultimodalTextbox(interactive=True)), None, [box], queue=False)

if __name__ == "__main__":
    kit.launch(demo)
