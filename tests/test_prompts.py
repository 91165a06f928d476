import pytest

from emowork.data import load_sev
from emowork.emotions import EMOTIONS, UnknownEmotionError, check_emotion, check_emotions
from emowork.prompts import build_prompts, emotion_prompt, neutral_prompt


def test_emotion_names():
    assert check_emotion("Joy") == "happiness" and check_emotions(None) == list(EMOTIONS)
    with pytest.raises(UnknownEmotionError, match="anger, sadness"):
        check_emotion("boredom")
    with pytest.raises(UnknownEmotionError, match="twice"):
        check_emotions(["anger", "angry"])


def test_prompts_follow_method_and_chat_template(tiny_llama):
    group = load_sev("analysis").groups[1]
    text = emotion_prompt(tiny_llama, group, "anger")
    assert text == (f"<|im_start|>system\nAlways reply in anger.\nKeep the reply to at most two sentences.<|im_end|>\n"
                    f"<|im_start|>user\n{group.message}<|im_end|>\n<|im_start|>assistant\n")
    assert neutral_prompt(tiny_llama, group).startswith("<|im_start|>system\nKeep the reply to at most two sentences.<|im_end|>")
    with pytest.raises(UnknownEmotionError):
        emotion_prompt(tiny_llama, group, "boredom")
    with pytest.raises(ValueError, match="emotion slot"):
        emotion_prompt(tiny_llama, group, "anger", template="Reply angrily.")
    from emowork.prompts import PARAPHRASE_TEMPLATES, system_instruction

    assert system_instruction(PARAPHRASE_TEMPLATES["feels"], "fear").startswith("Answer as someone who feels afraid.")
    assert system_instruction(PARAPHRASE_TEMPLATES["sound"], "joy").startswith("Your reply should sound overjoyed.")


def test_batch_is_group_major_with_last_token_index(tiny_llama):
    groups = load_sev("analysis").groups[:2]
    batch = build_prompts(tiny_llama, groups)
    assert len(batch) == 12 and batch.emotions[:6] == list(EMOTIONS) and batch.groups[5] == groups[0]
    for text, n, last in zip(batch.texts, batch.n_tokens, batch.last_index):
        ids = tiny_llama.tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == n and last == n - 1
        assert tiny_llama.tokenizer.decode(ids[last:]) == "\n"  # the generation prompt's final newline
    neutral = build_prompts(tiny_llama, groups, emotions=None)
    assert neutral.emotions == [None, None]


def test_templates_that_insert_a_date_get_a_fixed_one():
    import emowork
    from emowork.model.handle import FIXED_DATE

    handle = emowork.load_model("tiny-llama", device="cpu")
    # Llama 3.x style: today's date unless date_string is given.
    handle.tokenizer.chat_template = (
        "{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
        "Today Date: {{ date_string }}\n{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    )
    assert handle.format_chat("hi") == f"Today Date: {FIXED_DATE}\nhi\n"


@pytest.mark.embedded
def test_embedded_prompt_is_deterministic(embedded):
    group = load_sev("test").groups[0]
    assert emotion_prompt(embedded, group, "fear") == emotion_prompt(embedded, group, "fear")
    assert "Always reply in fear." in emotion_prompt(embedded, group, "fear")
