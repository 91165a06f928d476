"""An LLM judge over any OpenAI-compatible chat endpoint, asking the paper's question (docs/method.md section 6).

Configuration: ``base_url`` and ``model`` arguments, or ``EMOWORK_LLM_BASE_URL`` and ``EMOWORK_LLM_MODEL``; the API
key is read from the environment variable named by ``api_key_env`` (default ``EMOWORK_LLM_API_KEY``) at each request
and is never stored on the object, printed, logged or written to a result.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from ..emotions import EMOTIONS, check_emotion
from ..errors import EmoworkError
from .base import Judge

MATCH_SYSTEM = "You are a careful annotator of the emotional style of short texts. Answer with JSON only."
# The rubric every LLM judge asks (the OpenAI-compatible one here, the local one in local_llm.py); only the answer
# format differs: JSON over HTTP, a single word whose token probability is read locally.
MATCH_RUBRIC = (
    "Target emotion: {target}.\n"
    "Consider the STYLE of the text below: its tone and attitude, not whether its content is good or bad news. "
    "Among anger, sadness, happiness, fear, surprise and disgust, does its style match the target emotion?\n"
)
CLASSIFY_RUBRIC = (
    "Consider the STYLE of the text below: its tone and attitude, not whether its content is good or bad news. "
    "Which one of anger, sadness, happiness, fear, surprise, disgust does its style express most?\n"
)
TEXT_SLOT = '\n\nText: """{text}"""'
MATCH_QUESTION = MATCH_RUBRIC + 'Answer with exactly {{"match": 1}} or {{"match": 0}}.' + TEXT_SLOT
CLASSIFY_QUESTION = CLASSIFY_RUBRIC + 'Answer with exactly {{"emotion": "<one of the six>"}}.' + TEXT_SLOT
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class LLMJudgeError(EmoworkError):
    """The endpoint could not be reached, refused the request, or kept answering outside the required JSON."""


class LLMJudge(Judge):
    """Judge by asking a chat model; ``accept`` asks the paper's match question per (text, target)."""

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key_env: str = "EMOWORK_LLM_API_KEY",
                 timeout: float = 30.0, max_retries: int = 4, backoff: float = 1.0, concurrency: int = 4) -> None:
        self.base_url = (base_url or os.environ.get("EMOWORK_LLM_BASE_URL") or "").rstrip("/")
        self.model = model or os.environ.get("EMOWORK_LLM_MODEL") or ""
        if not self.base_url or not self.model:
            raise LLMJudgeError("The LLM judge needs an endpoint and a model: pass base_url= and model=, or set "
                                "EMOWORK_LLM_BASE_URL (e.g. https://api.openai.com/v1) and EMOWORK_LLM_MODEL; "
                                f"the key is read from ${api_key_env}.")
        self.api_key_env = api_key_env
        self.timeout, self.max_retries, self.backoff, self.concurrency = timeout, max_retries, backoff, concurrency
        self.name = f"llm-{self.model}"
        self.version = f"{self.model}@{self.base_url}; paper's match question v1"
        self.threshold = 0.5

    def __repr__(self) -> str:
        return f"LLMJudge(model={self.model!r}, base_url={self.base_url!r}, key from ${self.api_key_env})"

    # ------------------------------------------------------------------ HTTP
    def _post(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0,
                           "response_format": {"type": "json_object"}}).encode()
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = f"{self.base_url}/chat/completions"
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                return str(payload["choices"][0]["message"]["content"])
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} {exc.reason}"
                if exc.code not in RETRY_STATUS:
                    raise LLMJudgeError(f"{url} refused the request: {last}. Check the model name and the key in ${self.api_key_env}.") from None
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, (socket.gaierror, ConnectionRefusedError)) or "Name or service" in str(reason):
                    raise LLMJudgeError(f"Cannot reach {self.base_url} ({reason}). The LLM judge needs network access to "
                                        "its endpoint; offline, use load_judge('default').") from None
                last = f"{reason}"
            except (TimeoutError, socket.timeout):
                last = f"timed out after {self.timeout} s"
            except (KeyError, IndexError, json.JSONDecodeError) as exc:
                last = f"not an OpenAI-style chat completion ({type(exc).__name__})"
        raise LLMJudgeError(f"{url}: gave up after {self.max_retries + 1} attempts; last error: {last}")

    def _ask_json(self, question: str, key: str, allowed: set[Any]) -> Any:
        """Ask, and parse the reply strictly as one JSON object whose ``key`` is in ``allowed`` (retried)."""
        last = ""
        for _ in range(self.max_retries + 1):
            content = self._post([{"role": "system", "content": MATCH_SYSTEM}, {"role": "user", "content": question}])
            try:
                data = json.loads(content.strip())
            except json.JSONDecodeError:
                last = f"not JSON: {content[:120]!r}"
                continue
            value = data.get(key) if isinstance(data, dict) else None
            if isinstance(value, str):
                value = value.strip().lower()
            if isinstance(value, bool):
                value = int(value)
            if value in allowed:
                return value
            last = f"no valid {key!r}: {content[:120]!r}"
        raise LLMJudgeError(f"{self.base_url}: the model kept answering outside the required JSON ({last}).")

    # ------------------------------------------------------------------ judging
    def match(self, text: str, target: str) -> bool:
        """The paper's question: does ``text``'s style match ``target``?"""
        return self._ask_json(MATCH_QUESTION.format(target=check_emotion(target), text=text), "match", {0, 1}) == 1

    def accept(self, texts: Sequence[str], targets: Sequence[str]) -> np.ndarray:
        texts, targets = list(texts), list(targets)
        if len(texts) != len(targets):
            raise ValueError(f"accept() needs one target per text ({len(texts)} texts, {len(targets)} targets)")
        with ThreadPoolExecutor(self.concurrency) as pool:
            return np.array(list(pool.map(self.match, texts, targets)), dtype=bool)

    def verdicts(self, texts: Sequence[str], targets: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        scores = self.scores(texts)
        return scores, self.accept(texts, targets), self.predict_from_scores(scores)

    def classify(self, text: str) -> str:
        """The emotion the model names for ``text``'s style."""
        return self._ask_json(CLASSIFY_QUESTION.format(text=text), "emotion", set(EMOTIONS))

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """One-hot ``[n, 6]`` of the emotion the model names."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            names = list(pool.map(self.classify, list(texts)))
        out = np.zeros((len(names), len(EMOTIONS)), dtype=np.float32)
        for i, name in enumerate(names):
            out[i, EMOTIONS.index(name)] = 1.0
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model, "base_url": self.base_url}
