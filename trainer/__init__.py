"""The ML side of TinyTutor: data checks, base models, layer pruning, fine-tuning, distillation,
evaluation, and the served (ONNX, int8) form of a model.

Nothing in this package imports storage, discord or asyncio. The entry point is
:func:`trainer.pipeline.run_training`, which takes a serialisable :class:`core.spec.TrainSpec`
and a progress callback and returns the artefacts it wrote.
"""
