"""The grammar-decoding study's arithmetic task: rewrite "A op B" as a chain of equal expressions, with and without a grammar.

Files: data (problems, rewrites, paired JSONL), grammar (the study's Lark grammar and its
GBNF translation, built in as `--grammar arithmetic`), exact (exact values without eval),
checks (syntactic, "semantic" (SymPy parses) and true correctness), train (a small char
model, minutes on a CPU), protocol (the study's experiment and the held-out table), cli
(`tinylm arithmetic ...`, also `python -m tinylm.tasks.arithmetic ...`). See docs/grammar.md.
"""
