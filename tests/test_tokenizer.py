import csv

import pytest
from transformers import CLIPTokenizer

from edgefusion_export.runtime.tokenizer import ClipTokenizer, builtin_vocabulary

from .conftest import shared_data

HARD_CASES = [
    "Café naïve résumé, Ångström Æsir straße",
    "emoji 🐱🚀 party!!! 👩‍👩‍👧",
    "  lots   of\t\nwhitespace  ",
    "1234567 numbers 3.14 and 1,000,000",
    "中文 日本語 한국어 Ελληνικά русский",
    "it's don't we'll they've I'd",
    "...!!!???---***",
    "A" * 300,
    " ".join(["word"] * 100),
    "",
    "the thing on the ring and the rest of the painting",  # overlapping merges: their ranks decide
    "a cat <|endoftext|> dog", "a<|endoftext|>b", "<|startoftext|>x", "a <|ENDOFTEXT|> b",  # special-token text
    "a  <|endoftext|>  <|endoftext|>b's",
]


def parti_prompts() -> list[str]:
    path = shared_data("prompts", "parti-prompts-subset.tsv")
    with open(path, encoding="utf-8") as handle:
        return [row["Prompt"] for row in csv.DictReader(handle, delimiter="\t")]


@pytest.fixture(scope="module")
def tokenizers():
    folder = shared_data("clip-tokenizer")
    reference = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    return reference, ClipTokenizer.from_files(folder / "vocab.json", folder / "merges.txt")


def test_matches_transformers_on_every_parti_prompt_and_hard_cases(tokenizers):
    reference, ours = tokenizers
    prompts = parti_prompts() + HARD_CASES
    assert len(prompts) >= 544
    mismatches = [p for p in prompts
                  if reference(p, padding="max_length", max_length=77, truncation=True)["input_ids"] != ours(p)]
    assert mismatches == []


def test_known_ids_and_padding(tokenizers):
    _, ours = tokenizers
    ids = ours("a photo of a cat")
    assert ids[:7] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(ids) == 77 and set(ids[7:]) == {49407}
    long = ours("word " * 200)
    assert len(long) == 77 and long[0] == 49406 and long[-1] == 49407


def test_builtin_vocabulary_is_readable_by_transformers(tmp_path):
    vocab, merges = builtin_vocabulary()
    ours = ClipTokenizer(vocab, merges)
    ours.save(tmp_path)
    reference = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"))
    for prompt in ["a photo of a cat", "Café 🐱 3.14!", *HARD_CASES]:
        assert reference(prompt, padding="max_length", max_length=77, truncation=True)["input_ids"] == ours(prompt)
    assert max(ours("ÿ~ z")) < 49408
    the, thing = vocab["the</w>"], vocab["ing</w>"]
    assert ours("the thing")[1:4] == [the, vocab["th"], thing]  # merge ranks decide: t+he</w>, th+ing</w>


def test_a_tokenizer_json_folder_reads_like_transformers(tmp_path):
    """transformers 5 saves tokenizer.json alone; the loader reads its BPE model (vocabulary and merges)."""
    from edgefusion_export.sources.loader import load_tokenizer

    folder = shared_data("clip-tokenizer")
    reference = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    reference.save_pretrained(tmp_path)
    assert not (tmp_path / "vocab.json").exists() and (tmp_path / "tokenizer.json").is_file()
    ours, saved = load_tokenizer(tmp_path), CLIPTokenizer.from_pretrained(str(tmp_path))
    prompts = parti_prompts() + HARD_CASES
    assert [p for p in prompts if saved(p, padding="max_length", max_length=77, truncation=True)["input_ids"] != ours(p)] == []


def test_a_tokenizer_folder_without_a_vocabulary_is_refused(tmp_path):
    from edgefusion_export.errors import UserError
    from edgefusion_export.sources.loader import load_tokenizer

    with pytest.raises(UserError, match="needs tokenizer.json, or vocab.json and merges.txt"):
        load_tokenizer(tmp_path)


def test_a_diffusers_folder_with_a_tokenizer_json_compiles(tiny_folder, cache_dir, tmp_path):
    import shutil

    from .conftest import compile_args, run_cli

    folder = shutil.copytree(tiny_folder, tmp_path / "model")
    reference = CLIPTokenizer(str(folder / "tokenizer" / "vocab.json"), str(folder / "tokenizer" / "merges.txt"))
    shutil.rmtree(folder / "tokenizer")
    reference.save_pretrained(folder / "tokenizer")  # what the installed transformers writes: tokenizer.json only
    assert sorted(path.name for path in (folder / "tokenizer").iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    result = run_cli(*compile_args(tmp_path / "bundle", cache_dir, "--model", folder))
    assert result.exit_code == 0, result.output
