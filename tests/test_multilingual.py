"""helpers.multilingual and the pieces under it: caption files with language tags, the language registry,
per-language metric tokens, the synthetic Chinese world, a decoder with a character vocabulary, MarianMT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.caption.decode import decode_captions
from helpers.caption.model import PrefixConfig, build_captioner, load_captioner
from helpers.caption.train import make_pairs
from helpers.data import write_synthetic_flickr
from helpers.data.flickr import read_caption_file
from helpers.data.synthetic_zh import FILES, human_translations, native_captions, write_synthetic_flickr_zh
from helpers.metrics import CaptionScorer, unicode_tokenize
from helpers.multilingual import data as lang_data
from helpers.multilingual.decoder import load_tokenizer, prefix_config, small_decoder, write_char_vocab
from helpers.multilingual.languages import REGISTRY, Language, get_language
from helpers.multilingual.routes import save_route

ZH = REGISTRY["zh"]
SCENE = {"objects": [["red", "circle"], ["blue", "circle"]], "relation": "right"}


def test_caption_file_with_language_tags_and_space_or_tab(tmp_path: Path):
    path = tmp_path / "flickr8kzhc.caption.txt"
    lines = [
        "1000268201_693b08cb0e.jpg#zhc#0 一个女孩走进一个木结构。",
        "1000268201_693b08cb0e.jpg#zhc#1\t一个小女孩爬进一个木制的剧场。",
        "1001773457_577c3a7d70.jpg#zhc#0 两只狗 在 路上打架。",  # spaces inside the caption stay
        "1001773457_577c3a7d70.jpg#zhc#1",  # no caption
        "bad id.jpg#zhc#0 x",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    captions, problems = read_caption_file(path)
    assert captions == {
        "1000268201_693b08cb0e.jpg": ["一个女孩走进一个木结构。", "一个小女孩爬进一个木制的剧场。"],
        "1001773457_577c3a7d70.jpg": ["两只狗 在 路上打架。"],
    }
    assert problems == [
        f"{path.name} line 4: expected an image id and one caption",
        f"{path.name} line 5: bad image id 'bad'",
    ]


def test_metric_tokens_per_language():
    assert (
        unicode_tokenize("一个穿着泳装的女人，躺在海水里。", "chars")
        == "一 个 穿 着 泳 装 的 女 人 躺 在 海 水 里"
    )
    assert unicode_tokenize("Ｃafé  au-lait!", "whitespace") == "café au lait"  # NFKC folds the full-width C
    with CaptionScorer(tokens="chars") as scorer:
        refs = {"a": ["红色的圆在蓝色的圆的左边"], "b": ["一个绿色的圆"]}
        same = scorer.score(refs, {"a": "红色的圆在蓝色的圆的左边。", "b": "一个绿色的圆"})
        other = scorer.score(refs, {"a": "一个黄色的圆", "b": "蓝色的圆在左边"})
        assert same["Bleu_4"] > 0.99 and other["Bleu_4"] < 0.5 and same["METEOR"] is None
        assert scorer.describe()["meteor"].startswith("not computed")
    with pytest.raises(ValueError, match="tokens must be one of"):
        CaptionScorer(tokens="words")


def test_registry_entries_are_data():
    assert get_language("zh") is ZH and ZH.metric_tokens == "chars" and ZH.tokenizer == "bert"
    new = get_language({"code": "xx", "name": "Made-up", "native": "xx.caption.txt"})
    assert new.metric_tokens == "whitespace" and new.machine is None
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        get_language("fr")
    with pytest.raises(ValueError, match="unknown language fields"):
        get_language({"code": "xx", "name": "x", "native": "x", "font": "y"})
    with pytest.raises(ValueError, match="metric_tokens"):
        Language(code="xx", name="x", native="x", metric_tokens="bytes")
    assert ZH.normalize("左边是一个红色的圆，右边 是一个蓝色的圆。") == "左边是一个红色的圆右边是一个蓝色的圆"
    assert new.normalize("Ça  va, Bien!") == "ça va bien"


def test_chinese_captions_state_the_facts_in_chinese_order():
    native = native_captions(SCENE)  # blue is on the left: speakers name the left object first
    assert len(set(native)) == 5 and all(c.startswith(("蓝", "左", "红", "图")) for c in native)
    assert "蓝色的圆在红色的圆的左边。" in native
    human = human_translations(SCENE)  # "a red circle to the right of a blue circle", ...
    assert human[0] == "一个红色的圆在一个蓝色的圆的右边。" and len(human) == 5


def test_synthetic_chinese_world(tmp_path: Path):
    flickr = write_synthetic_flickr(tmp_path, num_images=60, image_size=32, shapes=("circle",))
    folder = write_synthetic_flickr_zh(tmp_path, flickr)
    assert folder == tmp_path / "flickr8k-cn" and write_synthetic_flickr_zh(tmp_path, flickr) == folder
    native, p1 = read_caption_file(folder / FILES["native"])
    machine, p2 = read_caption_file(folder / FILES["machine"])
    human, p3 = read_caption_file(folder / FILES["human_translation"])
    test = (flickr / "Flickr_8k.testImages.txt").read_text().split()
    assert not (p1 or p2 or p3) and len(native) == len(machine) == 60 and sorted(human) == sorted(test)
    assert all(len(c) == 5 for c in [*native.values(), *machine.values()])
    assert "#zhc#0 " in (folder / FILES["native"]).read_text(encoding="utf-8")  # Flickr8K-CN's line format
    machine_text = " ".join(c for cs in machine.values() for c in cs)
    assert "离开" in machine_text or "正确" in machine_text  # the deliberate sense errors
    assert not set(machine_text.split()) & set(" ".join(c for cs in native.values() for c in cs).split())
    pairs = lang_data.read_parallel(folder / FILES["parallel"])
    assert len(pairs) == 5 * len((flickr / "Flickr_8k.trainImages.txt").read_text().split())
    assert pairs[0][0].islower() and "圆" in pairs[0][1]


def test_character_vocabulary_decoder_learns_and_round_trips(tmp_path: Path):
    captions = {"a.jpg": ["红色的圆"], "b.jpg": ["蓝色的圆在左边"]}
    tokenizer = load_tokenizer(
        ZH, write_char_vocab([c for cs in captions.values() for c in cs], tmp_path / "v")
    )
    assert tokenizer.convert_ids_to_tokens(tokenizer("红色", add_special_tokens=False)["input_ids"]) == [
        "红",
        "色",
    ]
    decoder = small_decoder(tokenizer)
    assert decoder["vocab_size"] == len(tokenizer) < 50 and decoder["eos_token_id"] == tokenizer.sep_token_id
    cfg = prefix_config(PrefixConfig(feature_dim=4, prefix_length=2), decoder, tokenizer)
    model = build_captioner(cfg, seed=0)
    feats = np.eye(4, dtype=np.float32)[:2] * 3
    pairs = make_pairs(feats, {"a.jpg": 0, "b.jpg": 1}, captions, ["a.jpg", "b.jpg"], tokenizer, 16)
    assert pairs.tokens[0][-1] == tokenizer.sep_token_id and pairs.pad_id == tokenizer.sep_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):  # two pictures, two captions: the decoder must tell them apart
        rows = pairs.tokens
        width = max(map(len, rows))
        tokens = torch.tensor([r + [pairs.pad_id] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        loss = model(torch.from_numpy(feats), tokens, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert decode_captions(model, tokenizer, feats, "greedy") == ["红色的圆", "蓝色的圆在左边"]  # no spaces
    folder = save_route(model, tokenizer, tmp_path / "model", {"route": "native"})
    again = load_captioner(folder)
    assert again.end_id == tokenizer.sep_token_id and again.cfg.vocab_size == len(tokenizer)
    assert decode_captions(again, load_tokenizer(ZH, folder), feats, "greedy") == [
        "红色的圆",
        "蓝色的圆在左边",
    ]


def test_small_translator_learns_parallel_sentences(tmp_path: Path):
    from helpers.multilingual.translator import (
        load_translator,
        save_translator,
        small_translator,
        train_translator,
        translate,
        write_translator_tokenizer,
    )

    pairs = [
        (">>cmn_Hans<< a red circle", "一个红色的圆"),
        (">>cmn_Hans<< a blue circle", "一个蓝色的圆"),
        (">>cmn_Hans<< the red circle is left of the blue circle", "红色的圆在蓝色的圆的左边"),
    ]
    tokenizer = write_translator_tokenizer(tmp_path / "mt", pairs, 40, ">>cmn_Hans<<")
    assert tokenizer.convert_ids_to_tokens(tokenizer(">>cmn_Hans<< a")["input_ids"])[0] == ">>cmn_Hans<<"
    model = small_translator(tokenizer, seed=0)
    losses = train_translator(model, tokenizer, pairs, steps=120, batch_size=8, lr=3e-3)
    assert losses[-1] < 0.2 * losses[0]
    save_translator(model, tokenizer, tmp_path / "mt")
    model, tokenizer = load_translator(tmp_path / "mt")
    english = ["a red circle", "the red circle is left of the blue circle"]
    assert translate(model, tokenizer, english, ">>cmn_Hans<<") == [
        "一个红色的圆",
        "红色的圆在蓝色的圆的左边",
    ]


def test_language_files_are_found_or_named(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="flickr8kzhc.caption.txt not found"):
        lang_data.load_language(ZH, tmp_path)
    (tmp_path / "flickr8kzhc.caption.txt").write_text("a_1.jpg#zhc#0 一个圆\n", encoding="utf-8")
    caps = lang_data.load_language(ZH, tmp_path)
    assert caps.native == {"a_1.jpg": ["一个圆"]} and caps.machine is None and caps.parallel is None
    with pytest.raises(ValueError, match="no parallel or machine"):
        lang_data.translator_corpus(caps, {}, ["a_1.jpg"])
