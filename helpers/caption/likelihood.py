"""How likely the captioner finds a given text for a given image: log p(text | image), summed over tokens.

One scorer serves three uses: ranking candidate sentences of a narrative by how specific they are to a
picture, measuring whether a text singles out its own image (recall@1), and occlusion saliency (how much
a caption's likelihood drops when part of the picture is greyed out). The text is scored exactly as it
was trained: a leading space, GPT-2 tokens, then the end-of-text token that closes a caption.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from helpers.caption.model import EOS_ID, PrefixCaptioner
from helpers.caption.tokenizer import caption_text


def tokenize(tokenizer, texts: Sequence[str], end_id: int = EOS_ID) -> list[list[int]]:
    """Token ids of each text as trained: leading space, the end-of-caption token last."""
    return [[*tokenizer(caption_text(t))["input_ids"], end_id] for t in texts]


@torch.no_grad()
def sequence_log_probs(
    model: PrefixCaptioner, features: np.ndarray, ids: Sequence[Sequence[int]], batch_size: int = 128
) -> np.ndarray:
    """(N,) summed natural-log probability of token row i given feature row i."""
    model.eval()
    device = next(model.parameters()).device
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2 or len(feats) != len(ids):
        raise ValueError(f"need one feature row per text: {feats.shape} features, {len(ids)} texts")
    end = getattr(model, "end_id", EOS_ID)  # pads; masked out
    out = np.zeros(len(ids), dtype=np.float64)
    for start in range(0, len(ids), batch_size):
        rows = ids[start : start + batch_size]
        width = max(map(len, rows))
        tokens = torch.full((len(rows), width), end, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            tokens[r, : len(row)], mask[r, : len(row)] = torch.as_tensor(row), 1
        tokens, mask = tokens.to(device), mask.to(device)
        prefix = model.prefix(torch.from_numpy(feats[start : start + batch_size]).to(device))
        embeds = torch.cat([prefix, model.gpt.get_input_embeddings()(tokens)], dim=1)
        ones = torch.ones(prefix.shape[:2], dtype=mask.dtype, device=device)
        hidden = model.gpt.base_model(
            inputs_embeds=embeds, attention_mask=torch.cat([ones, mask], dim=1)
        ).last_hidden_state
        # The state one position earlier predicts each token (the last prefix slot the first token); the
        # vocabulary projection runs only where a real token is predicted.
        real = mask.bool()
        logits = model.gpt.get_output_embeddings()(hidden[:, prefix.shape[1] - 1 : -1][real]).float()
        picked = logits.gather(1, tokens[real][:, None])[:, 0] - torch.logsumexp(logits, -1)
        owner = torch.arange(len(rows), device=device)[:, None].expand_as(mask)[real]
        total = torch.zeros(len(rows), dtype=torch.float64, device=device)
        out[start : start + len(rows)] = total.index_add_(0, owner, picked.double()).cpu().numpy()
    return out


def log_likelihoods(
    model: PrefixCaptioner, tokenizer, features: np.ndarray, texts: Sequence[str]
) -> np.ndarray:
    """(N,) log p(texts[i] | features[i]) in nats."""
    return sequence_log_probs(model, features, tokenize(tokenizer, texts, getattr(model, "end_id", EOS_ID)))


def average_image(model: PrefixCaptioner, rows: int = 1) -> np.ndarray:
    """Feature rows of the training set's average picture (standardised features all zero): "no image"."""
    mean = model.feature_mean.detach().cpu().numpy().astype(np.float32)
    return np.repeat(mean[None], rows, axis=0)


def text_by_image(
    model: PrefixCaptioner, tokenizer, features: np.ndarray, texts: Sequence[Sequence[str]]
) -> np.ndarray:
    """(T, N) matrix: for each text (a list of sentences), the summed log-likelihood given each image.

    A narrative's sentences are scored one by one, each as a caption of the picture, and added up.
    """
    feats = np.asarray(features, dtype=np.float32)
    unique = list(dict.fromkeys(s for text in texts for s in text))  # each sentence scored once per image
    ids = tokenize(tokenizer, unique, getattr(model, "end_id", EOS_ID))
    pairs = [(u, j) for j in range(len(feats)) for u in range(len(unique))]
    flat = sequence_log_probs(model, feats[[j for _u, j in pairs]], [ids[u] for u, _j in pairs])
    per_sentence = flat.reshape(len(feats), len(unique)).T  # (U, N)
    index = {s: u for u, s in enumerate(unique)}
    return np.stack([per_sentence[[index[s] for s in text]].sum(0) for text in texts])


def recall_at_1(scores: np.ndarray) -> float:
    """Fraction of texts i whose own image i scores strictly highest (a tie is a miss)."""
    own = np.diag(scores)
    beaten = (scores >= own[:, None]).sum(1) - 1  # other images scoring at least as high
    return float(np.mean(beaten == 0))
