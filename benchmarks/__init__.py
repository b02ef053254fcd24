"""Benchmarks and device checks of OpenTAD, apart from the installed library.

One module per topic; ``tools/benchmark_<topic>.py`` parses the command line
and calls its ``run(args)``. Results and the commands that reproduce them:
``docs/benchmarks.md`` and ``docs/ddp.md``.

* :mod:`.backbone` (:mod:`.backbone_modes`): peak memory and step time of the video backbone per fine-tuning mode;
* :mod:`.ddp`: the several-GPU DDP check (data and configs, runs, report);
* :mod:`.loader` (:mod:`.loader_data`), :mod:`.decode` (:mod:`.decoders`), :mod:`.augment`: the end-to-end data path;
* :mod:`.actionformer`, :mod:`.evaluation`, :mod:`.inference`, :mod:`.ops`: detector, evaluator, single-video
  inference and native-op speed.
* :mod:`.detectors`: training-iteration time and peak memory of each one-stage detector against ActionFormer.
"""
