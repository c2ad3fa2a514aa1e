"""Teachable: people teach the assistant names, routines, value words and preferences by talking to it.

memory.py   the concepts, per home and user, in the data dir (taught.json, atomic writes)
phrases.py  the sentences of teaching: definitions, questions about the memory, forgetting, answers, unknown phrases
apply.py    how a taught concept changes a request before the NLU (the runner's `Teacher`)

The dialogue itself (asking "What is study mode?", confirming, replacing, forgetting) is the teach skill
(assistant/skills/teach.py).
"""
