"""Goal segmentation, goal success and failure point isolation from the traces alone (issue 14).

`labeller.py` (the three models at labelling time), `features.py` (what is read from a turn), `counterfactual.py`
(NLU re-runs on repaired transcripts), `model.py` (numpy logistic regression), `truth.py` (simulator truth: training
and scoring only), `evaluate.py` (`assistant learn labels-eval`), `report.py` (`assistant report defects`).
"""
