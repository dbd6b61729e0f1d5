"""ClipCap-style prefix captioner: image features -> `prefix_length` GPT-2 input embeddings -> caption.

A mapping network (an MLP, or a small transformer) turns one image feature vector into a prefix of
GPT-2 input embeddings; GPT-2 continues the prefix with the caption. The loss covers the caption tokens
(and the end-of-text token that stops them) only: prefix positions and padding are masked out, and the
vocabulary projection is computed only where a caption token is predicted.

The decoder is any transformers causal LM that accepts ``inputs_embeds`` (GPT-2 for English; for
Chinese a GPT-2 with a BERT-style character vocabulary): it is used through the generic accessors
(`base_model`, input and output embeddings), and the token that ends a caption is per tokenizer.

Weights are saved as safetensors plus a JSON config that holds the decoder's full config, so loading
needs neither pickle nor the Hugging Face hub.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from helpers import artifacts
from helpers.caption.tokenizer import GPT2_VOCAB_SIZE

EOS_ID = GPT2_VOCAB_SIZE - 1  # <|endoftext|>: ends every caption, also used as padding (masked)

#: A from-scratch GPT-2 small enough for CPU runs: 2 layers, 128 wide, GPT-2's real vocabulary.
#: Measured on the smoke world: 64 wide learned the image conditioning far slower (BLEU-4 0.49 vs 0.84
#: after the same 300 steps), and dropout off learned it faster (colours right 60 % vs 28 % after 375
#: steps); a few hundred steps never reach the point where dropout would pay for itself.
SMALL_GPT2 = {
    "n_layer": 2,
    "n_head": 4,
    "n_embd": 128,
    "n_positions": 64,
    "vocab_size": GPT2_VOCAB_SIZE,
    "bos_token_id": EOS_ID,
    "eos_token_id": EOS_ID,
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
}


@dataclass
class PrefixConfig:
    """The captioner's shape; `gpt2` is a hub name (pretrained weights) or GPT2Config keyword arguments."""

    feature_dim: int  # length of one image feature vector
    prefix_length: int = 10  # GPT-2 input embeddings the image becomes
    mapper: str = "mlp"  # "mlp" (ClipCap's) or "transformer"
    mapper_layers: int = 2  # transformer mapper: encoder layers
    mapper_tokens: int = 10  # transformer mapper: tokens the feature vector is first split into
    gpt2: str | dict = "gpt2"  # "gpt2": from_pretrained; a dict: GPT2Config(**dict), random init
    freeze_gpt2: bool = False  # train the mapper only; GPT-2 stays as loaded (and in eval mode)
    vocab_size: int = GPT2_VOCAB_SIZE  # the tokenizer's length; a random-init decoder must have it
    end_token_id: int | None = None  # ends a caption (and pads); None: the decoder config's eos_token_id

    def __post_init__(self) -> None:
        if self.mapper not in ("mlp", "transformer"):
            raise ValueError(f"mapper must be 'mlp' or 'transformer', got {self.mapper!r}")
        if self.feature_dim < 1 or self.prefix_length < 1:
            raise ValueError("feature_dim and prefix_length must be positive")


class MLPMapper(nn.Module):
    """ClipCap's MLP: features -> hidden (tanh) -> prefix_length x embed_dim."""

    def __init__(self, feature_dim: int, prefix_length: int, embed_dim: int):
        super().__init__()
        self.prefix_length, self.embed_dim = prefix_length, embed_dim
        hidden = prefix_length * embed_dim // 2
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden),
            nn.Tanh(),
            nn.Linear(hidden, prefix_length * embed_dim),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).view(-1, self.prefix_length, self.embed_dim)


class TransformerMapper(nn.Module):
    """ClipCap's transformer mapper: feature tokens + learned constants -> encoder -> constants' outputs."""

    def __init__(
        self, feature_dim: int, prefix_length: int, embed_dim: int, heads: int, layers: int, tokens: int
    ):
        super().__init__()
        self.tokens, self.embed_dim = tokens, embed_dim
        self.project = nn.Linear(feature_dim, tokens * embed_dim)
        self.constants = nn.Parameter(torch.randn(prefix_length, embed_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(embed_dim, heads, 4 * embed_dim, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.project(features).view(-1, self.tokens, self.embed_dim)
        x = torch.cat([x, self.constants.expand(x.shape[0], -1, -1)], dim=1)
        return self.encoder(x)[:, self.tokens :]


class PrefixCaptioner(nn.Module):
    """Mapper + GPT2LMHeadModel; `forward` returns the mean cross-entropy over caption tokens."""

    def __init__(self, cfg: PrefixConfig, gpt: Any):
        super().__init__()
        self.cfg, self.gpt = cfg, gpt
        embed = gpt.config.hidden_size  # n_embd for GPT-2
        if cfg.mapper == "mlp":
            self.mapper: nn.Module = MLPMapper(cfg.feature_dim, cfg.prefix_length, embed)
        else:
            self.mapper = TransformerMapper(
                cfg.feature_dim,
                cfg.prefix_length,
                embed,
                gpt.config.num_attention_heads,
                cfg.mapper_layers,
                cfg.mapper_tokens,
            )
        # Per-dimension standardisation with training-set statistics (set_feature_stats): random-init
        # features share a large common component that would drown the differences between pictures.
        self.register_buffer("feature_mean", torch.zeros(cfg.feature_dim))
        self.register_buffer("feature_std", torch.ones(cfg.feature_dim))
        if cfg.freeze_gpt2:
            self.gpt.requires_grad_(False)

    @torch.no_grad()
    def set_feature_stats(self, features: torch.Tensor | np.ndarray) -> None:
        """Store the mean and standard deviation of each feature over the training images."""
        feats = torch.as_tensor(np.asarray(features, dtype=np.float32))
        self.feature_mean.copy_(feats.mean(0))
        self.feature_std.copy_(feats.std(0).clamp_min(1e-6))  # constant (e.g. zeroed) features stay 0

    @property
    def end_id(self) -> int:
        """The token id that ends every caption (GPT-2's <|endoftext|>, a character vocabulary's [SEP])."""
        end = self.cfg.end_token_id
        return int(self.gpt.config.eos_token_id if end is None else end)

    def train(self, mode: bool = True) -> PrefixCaptioner:
        """Like nn.Module.train, but a frozen GPT-2 keeps dropout off."""
        super().train(mode)
        if self.cfg.freeze_gpt2:
            self.gpt.eval()
        return self

    def prefix(self, features: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) -> (B, prefix_length, n_embd) GPT-2 input embeddings."""
        return self.mapper((features.float() - self.feature_mean) / self.feature_std)

    def forward(self, features: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy over the caption tokens where `token_mask` is true."""
        prefix = self.prefix(features)
        length = prefix.shape[1]
        embeds = torch.cat([prefix, self.gpt.get_input_embeddings()(tokens)], dim=1)
        ones = torch.ones(prefix.shape[:2], dtype=token_mask.dtype, device=token_mask.device)
        hidden = self.gpt.base_model(
            inputs_embeds=embeds, attention_mask=torch.cat([ones, token_mask], dim=1)
        ).last_hidden_state
        # The hidden state one position earlier predicts each caption token (the last prefix slot the first).
        predicting = hidden[:, length - 1 : -1][token_mask.bool()]
        logits = self.gpt.get_output_embeddings()(predicting).float()
        return nn.functional.cross_entropy(logits, tokens[token_mask.bool()])


def build_gpt2(spec: str | dict, vocab_size: int = GPT2_VOCAB_SIZE) -> Any:
    """A causal LM: pretrained from the hub for a name (e.g. "gpt2"), random init for a config dict.

    A dict is a config of its ``model_type`` (default "gpt2"); its vocabulary must be the tokenizer's
    `vocab_size`.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if isinstance(spec, str):
        try:
            return AutoModelForCausalLM.from_pretrained(spec)  # the hub client caches, resumes and retries
        except OSError as err:  # what transformers raises for every download or cache failure
            raise RuntimeError(
                f"could not load {spec!r} from https://huggingface.co/{spec} ({str(err).splitlines()[0]}). "
                "Check the connection and run again (partial downloads resume; HF_HUB_DOWNLOAD_TIMEOUT=60 "
                f"helps on a slow link). Offline: run `hf download {spec}` on a connected machine and copy "
                "its cache to $HF_HOME here, or set HF_ENDPOINT to a mirror."
            ) from None
    kwargs = {k: v for k, v in spec.items() if k != "model_type"}
    config = AutoConfig.for_model(spec.get("model_type", "gpt2"), **kwargs)
    if config.vocab_size != vocab_size:
        which = f"GPT-2's {GPT2_VOCAB_SIZE}" if vocab_size == GPT2_VOCAB_SIZE else f"{vocab_size}"
        raise ValueError(f"vocab_size must be {which} (the tokenizer's), got {config.vocab_size}")
    return AutoModelForCausalLM.from_config(config)


def build_captioner(cfg: PrefixConfig, seed: int = 0) -> PrefixCaptioner:
    """A new captioner; random parts (mapper, a from-scratch GPT-2) are seeded."""
    torch.manual_seed(seed)
    return PrefixCaptioner(cfg, build_gpt2(cfg.gpt2, cfg.vocab_size))


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total and trainable parameter counts (tied embeddings counted once)."""
    params = list(model.parameters())  # nn.Module.parameters() already skips shared tensors
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


def state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict on CPU with tied tensors stored once (safetensors refuses shared storage)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in module.state_dict().items():
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        out[name] = tensor.detach().cpu().contiguous()
    return out


def load_state_tensors(module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of `state_tensors`: every key must load; only tied duplicates may be absent."""
    result = module.load_state_dict(tensors, strict=False)
    tied = set(module.state_dict()) - set(state_tensors(module))
    missing = set(result.missing_keys) - tied
    if missing or result.unexpected_keys:
        raise ValueError(
            f"weights do not fit the model: missing {sorted(missing)[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def save_captioner(model: PrefixCaptioner, folder: str | Path) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (PrefixConfig + the full GPT2Config) into `folder`."""
    from safetensors.torch import save

    folder = Path(folder)
    artifacts.write_bytes(folder / "model.safetensors", save(state_tensors(model)))
    config = {
        "format": "prefix-captioner/1",
        "prefix": dataclasses.asdict(model.cfg),
        "gpt2_config": model.gpt.config.to_dict(),
    }
    artifacts.write_json(folder / "config.json", config)
    return folder


def load_captioner(folder: str | Path, device: str | torch.device = "cpu") -> PrefixCaptioner:
    """Rebuild a saved captioner from its JSON config and safetensors weights (no hub, no pickle)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = artifacts.read_json(folder / "config.json")
    if config.get("format") != "prefix-captioner/1":
        raise ValueError(f"{folder / 'config.json'} is not a prefix-captioner config")
    gpt2 = {
        k: v for k, v in config["gpt2_config"].items() if k not in ("transformers_version", "architectures")
    }
    cfg = PrefixConfig(**{**config["prefix"], "gpt2": gpt2})
    model = PrefixCaptioner(cfg, build_gpt2(gpt2, cfg.vocab_size))
    load_state_tensors(model, load_file(str(folder / "model.safetensors")))
    return model.to(device).eval()
