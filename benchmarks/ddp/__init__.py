"""The several-GPU DDP check of ``tools/benchmark_ddp.py``: :mod:`.data` (data and configs), :mod:`.runs`
(launching the runs), :mod:`.report` (the summary read from each run's ``metrics.jsonl``)."""
