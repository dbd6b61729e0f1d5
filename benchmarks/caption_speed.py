"""Caption generation throughput on CPU: our prefix captioner against transformers' VisionEncoderDecoder.

Ours: `helpers.caption.Captioner` as notebook 06 builds it by default (CLIP ViT-B/32 at 224, torch -> MLP
mapper -> GPT-2 prefix; greedy and beam search through `GPT2LMHeadModel.generate` with its KV cache, the
linear layers multiplying through prepacked oneDNN weights as `helpers.caption.decode` always does on the
CPU; one more decoder-only contender shows ours with PyTorch's default kernels). A second end-to-end row
runs the same with the Keras ResNet50 encoder (the other encoder notebook 06 offers).
Theirs: `VisionEncoderDecoderModel` with a ViT encoder at 224 and a GPT-2 decoder of the same size with
cross-attention. Both from configs with random weights (no download); every contender makes exactly
`new_tokens` tokens per caption (end-of-text is suppressed until then, the same rule for all), from the
same images, at the same batch size and threads. Contenders run in alternating rounds in this one process
so that machine load hits them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.common import emit, memory_bandwidth, summarise, timed

#: gpt2-small's shape, as the full preset's `gpt2` (random weights here).
GPT2_SMALL = {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_positions": 1024}
#: ViT-Base/16, the usual ViT encoder of VisionEncoderDecoder captioners.
VIT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "patch_size": 16,
}
#: Decoder-only contender: our greedy decoder with PyTorch's default GEMM instead of prepacked oneDNN.
STOCK_KERNELS = "ours greedy, PyTorch's default kernels"
#: captions/s targets as ratios ours / VisionEncoderDecoder.
TARGETS = {
    "end_to_end/greedy": 3.0,
    "end_to_end/beam3": 3.0,
    "decoder_only/greedy": 1.0,
    "decoder_only/beam3": 1.0,
}


@dataclass(frozen=True)
class SpeedConfig:
    batch_size: int = 8  # images captioned per call, by every contender
    new_tokens: int = 20  # tokens per caption, exactly (a typical Flickr8k caption is 12-15 words)
    num_beams: int = 3  # beam width of the beam-search contenders
    repeats: int = 3  # timed alternating rounds
    warmup: int = 1  # untimed rounds first (graph building, allocator warm-up)
    # torch and TensorFlow threads. One by default: with two, every OpenMP barrier stalls whenever another
    # process holds a core (a GPT-2 forward measured 10x slower on a shared 2-core machine), so ratios
    # would measure the neighbours; one thread per side compares the models. --threads overrides.
    threads: int = 1
    image_size: int = 224  # pixels per side, both encoders
    backbone: str = "clip"  # our encoder: the full preset's default (CLIP ViT-B/32, random weights here)
    second_backbone: str | None = "resnet50"  # a second end-to-end row of ours with this encoder (Keras)
    clip_vision: dict = field(default_factory=dict)  # CLIPVisionConfig kwargs; {}: ViT-B/32
    prefix_length: int = 10  # GPT-2 embeddings the image becomes (the captioner's default)
    gpt2: dict = field(default_factory=lambda: dict(GPT2_SMALL))  # decoder shape, both sides
    vit: dict = field(default_factory=lambda: dict(VIT_BASE))  # their encoder's shape

    @classmethod
    def quick(cls) -> SpeedConfig:
        """Tiny models and sizes: seconds, to check the code path (numbers mean nothing)."""
        return cls(
            batch_size=2,
            new_tokens=4,
            repeats=1,
            image_size=32,
            prefix_length=4,
            clip_vision={
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 128,
                "patch_size": 8,
                "projection_dim": 64,
            },
            gpt2={"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 64},
            vit={
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 128,
                "patch_size": 8,
            },
        )


def set_threads(n: int) -> None:
    """Same intra-op thread count for torch and TensorFlow (before TensorFlow runs anything)."""
    import tensorflow as tf
    import torch

    torch.set_num_threads(n)
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)


def fixed_length(strategy: str, cfg: SpeedConfig):
    """A DecodeConfig whose generate kwargs also forbid end-of-text before `new_tokens` tokens."""
    from helpers.caption.decode import DecodeConfig
    from helpers.caption.model import EOS_ID

    @dataclass(frozen=True)
    class FixedLength(DecodeConfig):
        def generate_kwargs(self, end_id: int = EOS_ID) -> dict:
            return {**super().generate_kwargs(end_id), "min_new_tokens": self.max_new_tokens}

    # Repetition blocking off: the plain no-cache loop it is checked against implements argmax only.
    return FixedLength(
        strategy=strategy,
        num_beams=cfg.num_beams,
        max_new_tokens=cfg.new_tokens,
        no_repeat_ngram_size=0,
        block_stutter=False,
    )


def build_ours(cfg: SpeedConfig, backbone: str | None = None) -> Any:
    """`Captioner`: random-init image encoder (`cfg.backbone` unless given) + MLP mapper + GPT-2, as the
    full preset builds it."""
    from helpers.caption.captioner import Captioner
    from helpers.caption.features import EncoderConfig, ImageEncoder
    from helpers.caption.model import EOS_ID, PrefixConfig, build_captioner
    from helpers.caption.tokenizer import GPT2_VOCAB_SIZE

    backbone = backbone or cfg.backbone
    vision = dict(cfg.clip_vision) if backbone == "clip" else None
    encoder = ImageEncoder.build(EncoderConfig(backbone, None, cfg.image_size, vision=vision))
    gpt2 = {**cfg.gpt2, "vocab_size": GPT2_VOCAB_SIZE, "bos_token_id": EOS_ID, "eos_token_id": EOS_ID}
    model = build_captioner(PrefixConfig(encoder.feature_dim, cfg.prefix_length, "mlp", gpt2=gpt2))
    return Captioner(encoder, model)


def build_theirs(cfg: SpeedConfig) -> Any:
    """VisionEncoderDecoderModel: ViT encoder + GPT-2 decoder (same shape as ours) with cross-attention."""
    from transformers import GPT2Config, VisionEncoderDecoderConfig, VisionEncoderDecoderModel, ViTConfig

    from helpers.caption.model import EOS_ID
    from helpers.caption.tokenizer import GPT2_VOCAB_SIZE

    vit = ViTConfig(image_size=cfg.image_size, **cfg.vit)
    gpt2 = GPT2Config(
        **cfg.gpt2,
        vocab_size=GPT2_VOCAB_SIZE,
        bos_token_id=EOS_ID,
        eos_token_id=EOS_ID,
        add_cross_attention=True,
        is_decoder=True,
    )
    model = VisionEncoderDecoderModel(
        config=VisionEncoderDecoderConfig.from_encoder_decoder_configs(vit, gpt2)
    )
    model.generation_config.decoder_start_token_id = EOS_ID  # GPT-2 starts from <|endoftext|>
    model.generation_config.pad_token_id = EOS_ID
    return model.eval()


def nocache_greedy(captioner: Any, features: np.ndarray, new_tokens: int) -> list[list[int]]:
    """Plain greedy loop without the KV cache: the whole prefix + caption goes through GPT-2 every step.

    With the same prepacked kernels as the cached decoder, so that their ratio is the cache's alone.
    """
    import torch

    from helpers.caption.cpu_kernels import packed_linears
    from helpers.caption.model import EOS_ID

    with torch.no_grad(), packed_linears(captioner):
        embeds = captioner.prefix(torch.as_tensor(features))
        tokens = []
        for _ in range(new_tokens):
            hidden = captioner.gpt.transformer(inputs_embeds=embeds, use_cache=False).last_hidden_state
            logits = captioner.gpt.lm_head(hidden[:, -1])
            logits[:, EOS_ID] = -float("inf")  # the same fixed-length rule as min_new_tokens
            nxt = logits.argmax(-1)
            tokens.append(nxt)
            embeds = torch.cat([embeds, captioner.gpt.transformer.wte(nxt)[:, None]], dim=1)
    return torch.stack(tokens, 1).tolist()


def vit_pixels(images: np.ndarray) -> Any:
    """uint8 NHWC -> float NCHW in [-1, 1], ViTImageProcessor's default normalisation (mean = std = 0.5)."""
    import torch

    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def contenders(
    cfg: SpeedConfig, images: np.ndarray, models: dict[str, Any]
) -> dict[str, dict[str, Callable]]:
    """{mode: {name: call}}: end to end (uint8 images -> caption texts) and decoder only (-> token ids)."""
    from transformers.modeling_outputs import BaseModelOutput

    from helpers.caption.decode import generate_ids, ids_to_text

    ours, ved, tok, batch = models["ours"], models["ved"], models["ours"].tokenizer, cfg.batch_size
    decoders = {"greedy": fixed_length("greedy", cfg), f"beam{cfg.num_beams}": fixed_length("beam", cfg)}
    feats = ours.encode(list(images))  # precomputed for decoder only, exactly as caption_images makes them
    enc_out = ved.encoder(pixel_values=vit_pixels(images)).last_hidden_state.detach()

    def theirs_e2e(dec):
        def call():
            ids = ved.generate(pixel_values=vit_pixels(images), **dec.generate_kwargs())
            return ids_to_text(tok, ids[:, 1:].tolist())  # [:, 1:] drops the decoder start token

        return call

    def theirs_dec(dec):
        kw = dec.generate_kwargs()
        return lambda: ved.generate(encoder_outputs=BaseModelOutput(last_hidden_state=enc_out), **kw)[
            :, 1:
        ].tolist()

    e2e, dec_only = {}, {}
    second = models.get("ours_second")
    for name, dec in decoders.items():
        e2e[f"ours {name}"] = lambda dec=dec: ours.caption_images(list(images), decoding=dec)
        if second is not None:
            e2e[f"ours {name}, {cfg.second_backbone} encoder"] = lambda dec=dec: second.caption_images(
                list(images), decoding=dec
            )
        e2e[f"VisionEncoderDecoder {name}"] = theirs_e2e(dec)
        dec_only[f"ours {name}"] = lambda dec=dec: generate_ids(ours.model, feats, dec, batch)
        dec_only[f"VisionEncoderDecoder {name}"] = theirs_dec(dec)
    dec_only[STOCK_KERNELS] = lambda: generate_ids(ours.model, feats, decoders["greedy"], batch, packed=False)
    dec_only["ours greedy, plain loop without KV cache"] = lambda: nocache_greedy(
        ours.model, feats, cfg.new_tokens
    )
    return {"end_to_end": e2e, "decoder_only": dec_only}


def check_output(name: str, out: list, cfg: SpeedConfig) -> None:
    """Equal work: `batch_size` captions each, of exactly `new_tokens` tokens where token ids are returned.

    End to end returns texts; it uses the same decoding configs whose token counts decoder only checks.
    """
    lengths = {len(row) for row in out if not isinstance(row, str)}
    if len(out) != cfg.batch_size or lengths - {cfg.new_tokens}:
        raise RuntimeError(
            f"{name}: {len(out)} captions of token lengths {lengths}, expected "
            f"{cfg.batch_size} x {cfg.new_tokens}: the comparison would be unfair"
        )


def measure(cfg: SpeedConfig, calls: dict[str, dict[str, Callable]]) -> dict[str, dict[str, Any]]:
    """Alternating rounds (the order rotates each round); warm-up rounds are checked but not timed."""
    from tqdm.auto import tqdm

    flat = [(mode, name, fn) for mode, group in calls.items() for name, fn in group.items()]
    seconds: dict[tuple[str, str], list[float]] = {(m, n): [] for m, n, _ in flat}
    outputs: dict[tuple[str, str], list] = {}
    for r in tqdm(range(cfg.warmup + cfg.repeats), desc="rounds"):
        shift = r % len(flat)
        for mode, name, fn in flat[shift:] + flat[:shift]:
            s, ids = timed(fn)
            if r < cfg.warmup:
                check_output(name, ids, cfg)
                outputs[(mode, name)] = ids
            else:
                seconds[(mode, name)].append(s)
    out: dict[str, dict[str, Any]] = {mode: {} for mode in calls}
    for (mode, name), s in seconds.items():
        out[mode][name] = {**summarise(s), "captions_per_s": cfg.batch_size / float(np.median(s))}
    greedy = outputs[("decoder_only", "ours greedy")]
    out["nocache_matches_cached_greedy"] = (
        greedy == outputs[("decoder_only", "ours greedy, plain loop without KV cache")]
    )
    out["stock_kernels_match_packed_greedy"] = greedy == outputs[("decoder_only", STOCK_KERNELS)]
    return out


def parameter_counts(models: dict[str, Any]) -> dict[str, int]:
    """Parameters of each part (tied embeddings counted once)."""
    from helpers.caption.model import count_parameters

    def encoder_parameters(encoder: Any) -> int:
        n = getattr(encoder, "num_parameters", None)  # CLIP (torch); Keras models count their own
        return int(n if n is not None else encoder.model.count_params())

    out = {
        "ours_encoder": encoder_parameters(models["ours"].encoder),
        "ours_mapper": count_parameters(models["ours"].model.mapper)["total"],
        "ours_gpt2": count_parameters(models["ours"].model.gpt)["total"],
        "their_encoder": count_parameters(models["ved"].encoder)["total"],
        "their_decoder": count_parameters(models["ved"].decoder)["total"],
    }
    if "ours_second" in models:
        out["ours_second_encoder"] = encoder_parameters(models["ours_second"].encoder)
    return out


def weight_bytes_per_step(gpt: Any) -> int:
    """Bytes of GPT-2 weights one decoding step reads: every block and the LM head (tied to the token
    embedding, read whole by the head); the embeddings' lookups read a few rows only, so wpe is left out."""
    wpe = gpt.transformer.wpe.weight
    return sum(p.numel() * p.element_size() for p in gpt.parameters() if p is not wpe)


def bandwidth_floor(cfg: SpeedConfig, gpt: Any, dec: dict[str, Any]) -> dict[str, Any]:
    """Per-step floor (weight bytes / the faster of copy and triad); our decoder-only steps as its multiple.

    A step here is one token of every caption in the batch (the prefill step included), so seconds per
    step = the call's median / new_tokens; beam search reads the same weights per step for all beams.
    """
    bw = memory_bandwidth()
    nbytes = weight_bytes_per_step(gpt)
    floor_s = nbytes / max(bw.values())
    steps = {d: dec[f"ours {d}"]["median_s"] / cfg.new_tokens for d in ("greedy", f"beam{cfg.num_beams}")}
    return {
        **bw,
        "weight_bytes_per_step": nbytes,
        "floor_s_per_step": floor_s,
        "ours_s_per_step": steps,
        "multiple_of_floor": {d: s / floor_s for d, s in steps.items()},
    }


def setup_text(cfg: SpeedConfig, params: dict[str, int]) -> str:
    """One paragraph saying what was compared, generated from the config."""
    g, v, m = cfg.gpt2, cfg.vit, {k: f"{n / 1e6:.1f} M" for k, n in params.items()}
    if cfg.backbone == "clip":
        shape = "ViT-B/32" if not cfg.clip_vision else "reduced"
        encoder = f"CLIP vision tower ({shape}, torch, {m['ours_encoder']} parameters)"
    else:
        encoder = f"{cfg.backbone} (Keras, {m['ours_encoder']} parameters)"
    second = ""
    if cfg.second_backbone and "ours_second_encoder" in m:
        second = (
            f" The rows 'ours ..., {cfg.second_backbone} encoder' are the same captioner with "
            f"{cfg.second_backbone} features (Keras, {m['ours_second_encoder']} parameters), end to end."
        )
    return (
        f"Ours: {encoder} features at {cfg.image_size}x{cfg.image_size} -> MLP mapper "
        f"({m['ours_mapper']}) -> {cfg.prefix_length}-embedding prefix -> GPT-2 "
        f"({g['n_layer']} layers, {g['n_embd']} wide, {m['ours_gpt2']}), decoded by "
        "`GPT2LMHeadModel.generate` with its KV cache, all in float32; our production decoder "
        "(`helpers.caption.decode`) multiplies through oneDNN with prepacked weights on the CPU, and "
        f"'{STOCK_KERNELS}' is the same decoder with PyTorch's default (MKL) kernels, which the "
        "competitor uses. Theirs: `VisionEncoderDecoderModel`, ViT "
        f"({v['num_hidden_layers']} layers, {v['hidden_size']} wide, patch {v['patch_size']}, "
        f"{m['their_encoder']}) + GPT-2 of the same shape with cross-attention ({m['their_decoder']}). "
        "Random weights from configs, CPU. End-of-text is suppressed until exactly "
        f"{cfg.new_tokens} new tokens for every contender; beam search uses {cfg.num_beams} beams, length "
        "penalty 1 and early stopping; both sides get identical `generate` arguments. "
        f"{cfg.threads} thread(s) for torch and TensorFlow alike.{second}"
    )


def run(quick: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Build both models, time every contender in alternating rounds, and compute the ratios."""
    cfg = SpeedConfig.quick() if quick else SpeedConfig()
    if threads is not None:
        cfg = dataclasses.replace(cfg, threads=threads)
    import helpers  # noqa: F401  (TF_ENABLE_ONEDNN_OPTS before TensorFlow loads)

    set_threads(cfg.threads)
    models = {"ours": build_ours(cfg), "ved": build_theirs(cfg)}
    if cfg.second_backbone:
        models["ours_second"] = build_ours(cfg, cfg.second_backbone)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (cfg.batch_size, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    timings = measure(cfg, contenders(cfg, images, models))
    beam = f"beam{cfg.num_beams}"
    ratios = {
        mode: {
            d: timings[mode][f"ours {d}"]["captions_per_s"]
            / timings[mode][f"VisionEncoderDecoder {d}"]["captions_per_s"]
            for d in ("greedy", beam)
        }
        for mode in ("end_to_end", "decoder_only")
    }
    dec = timings["decoder_only"]
    params = parameter_counts(models)
    return {
        "config": dataclasses.asdict(cfg),
        "parameters": params,
        "setup": setup_text(cfg, params),
        "end_to_end": timings["end_to_end"],
        "decoder_only": dec,
        "ratios": ratios,
        "kv_cache_speedup": dec["ours greedy"]["captions_per_s"]
        / dec["ours greedy, plain loop without KV cache"]["captions_per_s"],
        "nocache_matches_cached_greedy": timings["nocache_matches_cached_greedy"],
        "stock_kernels_match_packed_greedy": timings["stock_kernels_match_packed_greedy"],
        "packed_kernels_speedup": dec["ours greedy"]["captions_per_s"] / dec[STOCK_KERNELS]["captions_per_s"],
        "bandwidth_floor": bandwidth_floor(cfg, models["ours"].model.gpt, dec),
        "targets": {k.replace("beam3", beam): v for k, v in TARGETS.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, for tests")
    parser.add_argument("--threads", type=int, help="torch and TensorFlow threads (default 1)")
    args = parser.parse_args(argv)
    emit(run(args.quick, args.threads))


if __name__ == "__main__":
    main()
