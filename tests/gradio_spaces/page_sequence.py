"""Drive one test Space by hand, as its page does, with the gradio_client of the Space's own venv, and print the
replies as JSON: proof that the Space answers as the tests expect, so a failing matrix test is the bridge's.

    <venv>/bin/python page_sequence.py SHAPE URL IMAGE WAV

Two turns: "hello" with the image and the audio, then "again" with the options set to other values where the
shape has any. Files are sent as uploaded FileData (``download_files=False`` keeps the server's values as is, as
the page holds them).
"""

import json
import sys

from gradio_client import Client, handle_file


def last(history):
    message = history[-1]
    content = message["content"] if isinstance(message, dict) else message[1]
    if isinstance(content, list):  # gradio 6: a list of typed parts
        return "".join(part.get("text", "") for part in content)
    return content


def run(shape, url, image, wav):
    client = Client(url, verbose=False, download_files=False)
    names = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    img, audio = handle_file(image), handle_file(wav)
    first, second = {"text": "hello", "files": [img, audio]}, {"text": "again", "files": []}
    replies = []

    def stream(*args, api_name):
        outputs = list(client.submit(*args, api_name=api_name))
        return outputs[-1], len(outputs)

    if shape in ("demo", "sendbutton", "textstream"):
        history = []
        for message, style in ((first, "short"), (second, "detailed")):
            history = client.predict(history, message, api_name="/add_message")[0]
            if shape == "demo":
                history, chunks = stream(history, api_name="/bot_response")
            elif shape == "sendbutton":
                history, chunks = stream(history, "You are Phi-4, a helpful assistant.", style, api_name="/bot")
            else:
                text, chunks = stream(history, api_name="/bot")
                history = client.predict(history, text, api_name="/to_chat")[0]
            replies.append([last(history), chunks])
    elif shape == "official":
        history = []
        for message, sound, sliders in ((dict(first, files=[img]), audio, (0.95, 50, 0.8, 1.05, 512)),
                                        (second, None, (0.5, 7, 0.2, 1.2, 64))):
            history = client.predict(history, message, sound, api_name="/check_messages")[0]
            history, chunks = stream(history, *sliders, api_name="/bot")
            replies.append([last(history), chunks])
    elif shape == "chatinterface":
        api = "/respond" if "/respond" in names else "/chat"
        for message, options in ((first, (0.8, "You are a helpful assistant.")), (second, (0.3, "Be brief."))):
            text, chunks = stream(message, *options, api_name=api)
            replies.append([text, chunks])
    elif shape == "gradio4":
        history = []
        for args in (("hello", img, audio, 256), ("again", None, None, 100)):
            history, chunks = stream(*args[:3], history, args[3], api_name="/respond")
            replies.append([last(history), chunks])
    elif shape == "nochat":
        replies.append([client.predict(img, "what?", api_name="/caption" if "/caption" in names else "/predict"), 1])
    return replies


if __name__ == "__main__":
    print(json.dumps(run(*sys.argv[1:5])))
