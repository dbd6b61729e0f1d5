"""Image captioning: cached image features (CLIP or Keras), a ClipCap-style GPT-2 prefix captioner, decoding.

Modules: `tokenizer` (GPT-2's, offline), `features` (encoders + cache), `clip` (the CLIP encoder),
`model` (mapper + GPT-2),
`train` (training loop, checkpoints), `decode` (greedy / beam / nucleus), `captioner` (pictures in,
captions out), `config` (notebook 06's knobs), and notebook 06's stages: `stats`, `variants` (the model
and its image-blind twin), `scoring`, `results` (its files), `report` (table, conclusion), `cifar_captions`,
`plots`, `study` (the encoder study); `cpu_kernels` (faster CPU decoding).
Import the submodules directly; this package import stays light (no TensorFlow, no PyTorch).
"""
