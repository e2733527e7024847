"""Zero- and few-shot prompting (GPT-2, GPT-3): solve a task with the language model alone.

  scoring.py    log-likelihood of candidate completions, the shared prompt through the KV cache once
  templates.py  prompt templates and verbalizers, a default for every task name
  fewshot.py    k seeded demonstrations from the training split, fitted into the context
  evaluate.py   a whole task: predictions, metrics, chance level (what `minigpt evaluate` runs)
  perplexity.py a whole text: loss, perplexity, bits per character in sliding windows (`minigpt perplexity`)
"""
from minigpt.prompting.evaluate import UnencodableText, evaluate_task
from minigpt.prompting.fewshot import Prompt, draw_demonstrations, fit_prompt
from minigpt.prompting.perplexity import score_text, score_tokens
from minigpt.prompting.scoring import SCORINGS, aggregate, score_candidates
from minigpt.prompting.templates import DEFAULTS, FIELDS, Template, default_template, label_words, resolve_template

__all__ = ["UnencodableText", "evaluate_task", "score_text", "score_tokens",
           "Prompt", "draw_demonstrations", "fit_prompt", "SCORINGS", "aggregate",
           "score_candidates", "DEFAULTS", "FIELDS", "Template", "default_template", "label_words",
           "resolve_template"]
