"""Reproducible pipelines: one TOML file describes an experiment; `tinylm pipeline run` runs
its stages, records every output's sha256 and skips what has not changed; `tinylm pipeline
check` reruns everything and says which outputs came out bit-identical (docs/pipelines.md).

    spec.py     the file format: reading and validating a pipeline
    kinds.py    stage kinds (gen-data, tokenizer, train, quantize, export, eval, eval-task,
                bench, report, shell): what each runs
    runner.py   running stages, keys, the manifest, crash safety, the check
    report.py   the report stage: Markdown and PNG plots of the runs
"""

from tinylm.pipeline.spec import Pipeline, Stage, load_pipeline

__all__ = ["Pipeline", "Stage", "load_pipeline"]
