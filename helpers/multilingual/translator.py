"""English -> language translation for translate-test: MarianMT, pretrained by hub id or trained here.

`full` loads e.g. ``Helsinki-NLP/opus-mt-en-zh``. The smoke and sample presets have no hub: they write a
translator folder in the same layout (``source.spm``, ``target.spm`` sentencepiece models trained offline on
the parallel captions, ``vocab.json``), train a small randomly initialised MarianMT on those captions and
save it; both are then loaded by the same `from_pretrained` calls.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from helpers import artifacts

#: A small MarianMT for CPU runs: 2+2 layers, 64 wide (~0.2 M parameters with a small vocabulary).
SMALL_MARIAN = {
    "d_model": 64,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128,
    "max_position_embeddings": 128,
    "dropout": 0.0,
}
SPECIALS = ("</s>", "<unk>", "<pad>")  # Marian's: eos 0, unk 1, pad 2 (pad also starts decoding)


def _spm_model(lines: list[str], vocab_size: int, symbols: list[str]) -> bytes:
    """A sentencepiece unigram model of `lines`: up to `vocab_size` pieces (more if the alphabet needs)."""
    import sentencepiece as spm

    alphabet = len({c for line in lines for c in line})
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=out,
        vocab_size=max(vocab_size, alphabet + len(symbols) + 8),
        hard_vocab_limit=False,  # a small corpus may not fill the vocabulary
        character_coverage=1.0,
        user_defined_symbols=symbols,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        unk_id=0,
        minloglevel=2,
    )
    return out.getvalue()


def write_translator_tokenizer(
    folder: str | Path, pairs: list[tuple[str, str]], vocab_size: int, prefix: str
) -> Any:
    """Train source/target sentencepiece models on `pairs`, write a MarianTokenizer folder, and load it."""
    import sentencepiece as spm
    from transformers import MarianTokenizer

    folder = Path(folder)
    symbols = [prefix] if prefix else []
    artifacts.write_bytes(folder / "source.spm", _spm_model([e for e, _ in pairs], vocab_size, symbols))
    artifacts.write_bytes(folder / "target.spm", _spm_model([z for _, z in pairs], vocab_size, []))
    pieces = list(SPECIALS)
    for name in ("source.spm", "target.spm"):
        proc = spm.SentencePieceProcessor(model_file=str(folder / name))
        pieces += [p for p in (proc.id_to_piece(i) for i in range(proc.get_piece_size())) if p not in pieces]
    artifacts.write_text(
        folder / "vocab.json", json.dumps({p: i for i, p in enumerate(pieces)}, ensure_ascii=False)
    )
    MarianTokenizer(
        source_spm=str(folder / "source.spm"),
        target_spm=str(folder / "target.spm"),
        vocab=str(folder / "vocab.json"),
    ).save_pretrained(str(folder))
    return MarianTokenizer.from_pretrained(str(folder))


def small_translator(tokenizer: Any, seed: int = 0) -> Any:
    """A randomly initialised `SMALL_MARIAN` for `tokenizer`'s vocabulary."""
    from transformers import MarianConfig, MarianMTModel

    torch.manual_seed(seed)
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    config = MarianConfig(
        vocab_size=len(tokenizer),
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=pad,
        forced_eos_token_id=eos,
        **SMALL_MARIAN,
    )
    return MarianMTModel(config)


def train_translator(
    model: Any,
    tokenizer: Any,
    pairs: list[tuple[str, str]],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
) -> list[float]:
    """AdamW with linear decay over `steps` random batches of `pairs`; returns the loss of each step."""
    from transformers import get_linear_schedule_with_warmup

    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = get_linear_schedule_with_warmup(optimizer, steps // 10, steps)
    model.train()
    losses = []
    for _ in range(steps):
        batch = [pairs[i] for i in rng.integers(len(pairs), size=batch_size)]
        enc = tokenizer(
            [e for e, _ in batch], text_target=[z for _, z in batch], return_tensors="pt", padding=True
        )
        enc["labels"][enc["labels"] == tokenizer.pad_token_id] = -100  # no loss on padding
        loss = model(**enc).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def translate(
    model: Any, tokenizer: Any, texts: list[str], prefix: str = "", num_beams: int = 3, batch_size: int = 32
) -> list[str]:
    """Translations of `texts`, in order; `prefix` is the target-language token a multi-target model needs."""
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for start in range(0, len(texts), batch_size):
        chunk = [f"{prefix} {t}" if prefix else t for t in texts[start : start + batch_size]]
        # A garbled input (an untrained captioner's) may hold more pieces than the model has positions.
        limit = model.config.max_position_embeddings
        enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=limit).to(
            device
        )
        ids = model.generate(**enc, num_beams=num_beams, max_new_tokens=min(64, limit - 1))
        out += [" ".join(t.split()) for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out


def load_translator(source: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a hub id or a folder written by `save_translator`."""
    from transformers import MarianMTModel, MarianTokenizer

    try:
        return MarianMTModel.from_pretrained(str(source)), MarianTokenizer.from_pretrained(str(source))
    except OSError as err:  # what transformers raises for every download or cache failure
        raise RuntimeError(
            f"could not load the translator {source!r} ({str(err).splitlines()[0]}); offline, run "
            f"`hf download {source}` on a connected machine and copy its cache to $HF_HOME here"
        ) from None


def save_translator(model: Any, tokenizer: Any, folder: str | Path) -> Path:
    """Weights, config and tokenizer files in the hub layout."""
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return Path(folder)
