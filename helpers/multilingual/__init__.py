"""Captions in other languages (notebook 08): native, translate-train and translate-test, scored on human
references.

Modules: `languages` (the registry: languages are data), `data` (a language's caption files), `decoder`
(its tokenizer and decoder), `translator` (MarianMT), `translate_test`, `routes` (training and scoring the
routes), `study` (one language end to end), `config` (notebook 08's knobs), `report`, `serving` (captions in
a language for the demo and the endpoint).
Import the submodules directly; this package import stays light (no TensorFlow, no PyTorch).
"""
