"""Token files: the ids of the in-memory path, reuse, invalidation, atomic writes, the cache."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from termlm.corpus import read_corpus
from termlm.corpusstream import iter_text, scan_corpus
from termlm.errors import CorpusError
from termlm.tokencache import BUILDING, list_entries, tokens_dir
from termlm.tokenfile import Split, TextSource, _Writer, token_file
from termlm.tokenizers import fit_tokenizer
from termlm.tokenizers.base import fit_tokenizer_chunks
from termlm.tokenizers.bulk import encode_large
from termlm.training.split import line_start_prompt, split_for_validation

SOURCE = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak. ΣΟΦΟΣ σοφός — naïve café\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\t\n"
    "MENENIUS:\nWhy, masters, my good friends, mine honest neighbours,\n"
    "Will you undo yourselves? 日本語のテキスト also here.\n\n"
)


@pytest.fixture()
def text() -> str:
    # about 60,000 characters: several interleaved blocks, many encoding pieces
    return "".join(f"{i}: {SOURCE}" for i in range(220))


@pytest.fixture()
def corpus(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


def _source(path: Path, chunk_bytes: int = 3001) -> TextSource:
    scan = scan_corpus(path)
    return TextSource(
        sha256=scan.sha256,
        name=scan.name,
        chars=scan.chars,
        size=scan.size,
        chunks=lambda progress: iter_text(scan, chunk_bytes, progress),
    )


LEVELS = [
    ("char", {}),
    ("char", {"lowercase": True, "max_vocab": 30}),
    ("word", {}),
    ("word", {"punctuation": "keep", "max_vocab": 200}),
    ("bpe", {"vocab_size": 400}),
]


@pytest.mark.parametrize("how", ["tail", "interleaved"])
@pytest.mark.parametrize(("level", "fit"), LEVELS)
def test_token_file_gives_the_ids_of_the_in_memory_path(
    corpus: Path, text: str, level: str, fit: dict, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("termlm.tokenfile.PIECE_CHARS", 1500)  # many pieces, many cuts
    monkeypatch.setattr("termlm.tokenizers.fitting.PIECE_CHARS", 1500)
    source = _source(corpus)
    expected_tokenizer = fit_tokenizer(level, text, **fit)
    streamed = fit_tokenizer_chunks(level, lambda: source.chunks(None), source.chars, **fit)
    assert streamed.to_json() == expected_tokenizer.to_json()

    made, built = token_file(source, streamed, Split(how, 0.1))
    assert built
    train_text, val_text, _ = split_for_validation(text, 0.1, how)
    assert np.array_equal(made.train, encode_large(streamed, train_text))
    assert made.train.tolist() == streamed.encode(train_text)  # each word once, the same ids
    assert np.array_equal(made.val, np.asarray(streamed.encode(val_text)))
    assert made.val_chars == len(val_text)
    assert line_start_prompt(made.val_head) == line_start_prompt(val_text)
    assert made.train.dtype == (np.uint8 if streamed.vocab_size <= 256 else np.uint16)
    assert isinstance(made.train, np.memmap)


def test_split_none_holds_every_id(corpus: Path, text: str) -> None:
    tokenizer = fit_tokenizer("char", text)
    made, _ = token_file(_source(corpus), tokenizer, Split("none"))
    assert np.array_equal(made.train, np.asarray(tokenizer.encode(text)))
    assert len(made.val) == 0


def test_short_text_holds_out_its_last_block(tmp_path: Path) -> None:
    text = ("a line of text\n" * 40)[:-1]  # one interleaved block: fewer than k
    path = tmp_path / "short.txt"
    path.write_text(text, encoding="utf-8")
    tokenizer = fit_tokenizer("char", text)
    made, _ = token_file(_source(path, 7), tokenizer, Split("interleaved", 0.1))
    train_text, val_text, _ = split_for_validation(text, 0.1, "interleaved")
    assert train_text == "" and val_text == text
    assert len(made.train) == 0 and np.array_equal(made.val, tokenizer.encode(text))


@pytest.mark.parametrize(
    "data",
    [
        b"plain ascii\nand more\n",
        "ünïcödé ΣΑΣ 日本\n".encode() * 50,
        "caf\xe9 na\xefve \u201cquoted\u201d\n".encode("cp1252") * 20,
        b"\x81 latin one \xe9\n" * 20,
        "\ufeffwith a mark\n".encode(),
        "wide text ☃\n".encode("utf-16"),
    ],
)
def test_streamed_text_is_the_text_read_whole(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(data)
    whole = read_corpus(path)
    scan = scan_corpus(path)
    assert (scan.sha256, scan.encoding, scan.note) == (whole.sha256, whole.encoding, whole.note)
    assert scan.chars == len(whole.text)
    assert "".join(iter_text(scan, 5)) == whole.text


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b" \n\t \n", "white space"), (b"text\x00more", "binary")],
)
def test_scan_refuses_what_read_corpus_refuses(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "c.txt"
    path.write_bytes(data)
    with pytest.raises(CorpusError, match=message):
        read_corpus(path)
    with pytest.raises(CorpusError, match=message):
        scan_corpus(path)


def test_a_corpus_over_the_limit_is_refused_before_reading(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERMLM_MAX_CORPUS_MB", "1")
    big = corpus.parent / "big.txt"
    big.write_bytes(b"word " * (300 * 1024))
    with pytest.raises(CorpusError, match="TERMLM_MAX_CORPUS_MB=2"):
        scan_corpus(big)


def test_second_run_reuses_and_a_changed_corpus_gets_its_own_file(corpus: Path, text: str) -> None:
    tokenizer = fit_tokenizer("char", text)
    first, built = token_file(_source(corpus), tokenizer, Split("tail", 0.1))
    again, built_again = token_file(_source(corpus), tokenizer, Split("tail", 0.1))
    assert built and not built_again and again.folder == first.folder
    other, built_other = token_file(_source(corpus), tokenizer, Split("interleaved", 0.1))
    assert built_other and other.folder != first.folder

    with open(corpus, "a", encoding="utf-8") as handle:
        handle.write("And one more line.\n")
    changed, built_changed = token_file(_source(corpus), tokenizer, Split("tail", 0.1))
    assert built_changed and changed.folder != first.folder
    assert changed.meta["chars"] == len(text) + len("And one more line.\n")
    assert len(list_entries()) == 3


def test_a_file_changed_while_read_is_refused(corpus: Path) -> None:
    scan = scan_corpus(corpus, remember=False)
    corpus.write_text("something else entirely\n" * 50, encoding="utf-8")
    with pytest.raises(CorpusError, match="changed"):
        "".join(iter_text(scan))


def _no_half_files() -> None:
    folder = tokens_dir()
    left = list(folder.iterdir()) if folder.exists() else []
    assert left == []


def test_ctrl_c_while_tokenizing_leaves_no_half_file(corpus: Path, text: str) -> None:
    tokenizer = fit_tokenizer("char", text)
    calls = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        token_file(_source(corpus), tokenizer, Split("tail", 0.1), on_progress=interrupt)
    _no_half_files()
    made, built = token_file(_source(corpus), tokenizer, Split("tail", 0.1))
    assert built and len(made.train) + len(made.val) == len(text)


def test_a_full_disk_leaves_no_half_file(
    corpus: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = fit_tokenizer("char", text)
    monkeypatch.setattr("termlm.tokenfile.PIECE_CHARS", 1000)
    real = _Writer._encode
    written = []

    def encode(self: _Writer, piece: str) -> None:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(piece)
        real(self, piece)

    monkeypatch.setattr(_Writer, "_encode", encode)
    with pytest.raises(CorpusError, match="No space left on device") as refused:
        token_file(_source(corpus), tokenizer, Split("tail", 0.1))
    assert "TERMLM_CACHE_DIR" in (refused.value.hint or "")
    _no_half_files()


def test_a_killed_build_is_swept_and_a_damaged_file_rebuilt(corpus: Path, text: str) -> None:
    tokenizer = fit_tokenizer("char", text)
    made, _ = token_file(_source(corpus), tokenizer, Split("tail", 0.1))
    dead = tokens_dir() / f"{BUILDING}{'0' * 32}-999999999"
    dead.mkdir()
    (dead / "train.bin").write_bytes(b"\0" * 10)
    with open(made.folder / "train.bin", "r+b") as handle:
        handle.truncate(5)  # damaged: its size no longer matches meta.json
    rebuilt, built = token_file(_source(corpus), tokenizer, Split("tail", 0.1))
    assert built and not dead.exists()
    assert len(rebuilt.train) == json.loads((made.folder / "meta.json").read_text())["train_tokens"]


def test_training_reuses_the_token_file_and_resume_finds_or_rebuilds_it(
    corpus: Path, tmp_path: Path
) -> None:
    from termlm.tokencache import clear
    from termlm.training.options import build_options
    from termlm.training.prepare import prepare

    said: list[str] = []
    options = build_options(corpus=str(corpus), level="char", arch="lstm", out=str(tmp_path))
    first = prepare(options, say=said.append)
    assert any(line.startswith("tokenizing") for line in said)
    assert isinstance(first.batches.ids, np.memmap)  # type: ignore[union-attr]
    first.write_run_files()

    said.clear()
    second = prepare(
        build_options(corpus=str(corpus), level="char", arch="lstm", out=str(tmp_path / "b")),
        say=said.append,
    )
    assert any("(reused)" in line for line in said)
    assert not any(line.startswith(("tokenizing", "fitting")) for line in said)
    assert np.array_equal(first.val_ids, second.val_ids)

    said.clear()
    resumed = prepare(
        build_options(corpus=None, level="char", arch="lstm"), first.run_dir, say=said.append
    )
    assert any("(reused)" in line for line in said)
    clear()  # the cache is gone: --resume tokenizes the corpus again with the run's tokenizer
    said.clear()
    again = prepare(
        build_options(corpus=None, level="char", arch="lstm"), first.run_dir, say=said.append
    )
    assert any(line.startswith("tokenizing") for line in said)
    assert np.array_equal(again.batches.ids, resumed.batches.ids)  # type: ignore[union-attr]


def test_resume_refuses_another_text_before_tokenizing(corpus: Path, tmp_path: Path) -> None:
    from termlm.training.options import build_options
    from termlm.training.prepare import prepare

    first = prepare(build_options(corpus=str(corpus), level="char", arch="lstm", out=str(tmp_path)))
    first.write_run_files()
    other = tmp_path / "other.txt"
    other.write_text("a different text\n" * 500, encoding="utf-8")
    with pytest.raises(CorpusError, match="not the text the run began with"):
        prepare(build_options(corpus=str(other), level="char", arch="lstm"), first.run_dir)


def test_rank_shares_are_disjoint() -> None:
    from termlm.training.distributed import DistInfo, rank_share

    batches = list(range(11))
    shares = [list(rank_share(batches, DistInfo(rank=r, world_size=2))) for r in range(2)]
    assert shares == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    assert list(rank_share([7], DistInfo(rank=1, world_size=2))) == [7]  # fewer than ranks


def test_an_epoch_is_made_batch_by_batch_with_the_same_order() -> None:
    from termlm.training.data import StreamBatches

    ids = np.arange(10_000) % 50
    batches = StreamBatches(ids, context=16, batch_size=8, seed=3)
    epoch = batches.epoch(2)
    rng = np.random.default_rng([3, 2])
    spare = len(ids) - 1 - batches.n_chunks * 16
    offset = int(rng.integers(0, spare + 1))
    starts = offset + 16 * rng.permutation(batches.n_chunks)  # the order held whole, as before
    assert len(epoch) == -(-len(starts) // 8)
    assert all(np.array_equal(epoch[i], starts[i * 8 : (i + 1) * 8]) for i in range(len(epoch)))
    assert epoch.order.dtype == np.uint32  # type: ignore[attr-defined]


def test_two_ddp_processes_train_from_one_token_file(
    corpus: Path, tmp_path: Path, _own_cache: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29531",
        "-m",
        "termlm",
        "train",
        str(corpus),
        "--level",
        "char",
        "--arch",
        "lstm",
        "--max-steps",
        "6",
        "--hidden",
        "32",
        "--embed",
        "16",
        "--context",
        "32",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--out",
        str(tmp_path),
        "--name",
        "ddp",
        "--quiet",
        "--json",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    # the ranks' own errors come first, the launcher's summary last
    assert done.returncode == 0, f"{done.stderr[:3000]}\n…\n{done.stderr[-1000:]}"
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert result["world_size"] == 2 and result["ranks_in_sync"] is True
    entries = [p.name for p in (_own_cache / "tokens").iterdir()]
    assert len(entries) == 1 and not entries[0].startswith(".")


def test_cache_command_lists_sizes_and_clears(corpus: Path, text: str) -> None:
    tokenizer = fit_tokenizer("char", text)
    token_file(_source(corpus), tokenizer, Split("tail", 0.1))
    run = [sys.executable, "-m", "termlm", "cache", "--json"]
    listed = json.loads(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
    assert len(listed["token_files"]) == 1
    entry = listed["token_files"][0]
    assert entry["corpus"] == "corpus.txt" and entry["tokens"] == len(text)
    assert listed["bytes"] >= entry["bytes"] >= len(text)
    plain = subprocess.run(run[:-1], capture_output=True, text=True, check=True).stdout
    assert "corpus.txt" in plain and "termlm cache --clear" in plain
    cleared = json.loads(
        subprocess.run([*run, "--clear"], capture_output=True, text=True, check=True).stdout
    )
    assert cleared["removed"] >= 1 and list_entries() == []


@pytest.mark.parametrize(
    ("n", "context", "batch"),
    [(0, 4, 3), (1, 4, 3), (2, 4, 3), (10, 4, 3), (50, 8, 64), (300, 16, 7)],
)
def test_window_batches_are_made_from_the_memory_map_as_read(
    tmp_path: Path, n: int, context: int, batch: int
) -> None:
    from termlm.config import ModelConfig
    from termlm.runtime.evaluation import iter_window_batches, iter_window_examples
    from termlm.training.evaluation import eval_batches

    ids = np.random.default_rng(n).integers(1, 200, n).astype(np.uint8)
    path = tmp_path / "val.bin"
    ids.tofile(path)
    mapped = np.memmap(path, dtype=np.uint8, mode="r", shape=(n,)) if n else ids
    padded = np.concatenate([np.zeros(context, dtype=np.int64), ids.astype(np.int64)])
    windows = [padded[t : t + context] for t in range(1, n)]  # the window before each target

    made = list(iter_window_batches(mapped, context, 0, batch))
    assert [len(w) for w, _ in made] == [min(batch, n - 1 - i) for i in range(0, n - 1, batch)]
    assert all(w.dtype == np.int64 and t.dtype == np.int64 and t.shape[1] == 1 for w, t in made)
    if windows:
        assert np.array_equal(np.concatenate([w for w, _ in made]), np.stack(windows))
        assert np.array_equal(np.concatenate([t for _, t in made])[:, 0], ids[1:])
    examples = list(iter_window_examples(mapped, context))
    assert [int(t) for _, t in examples] == ids[1:].tolist()
    assert all(np.array_equal(w, e) for (w, _), e in zip(examples, windows, strict=True))

    config = ModelConfig(arch="lstm", vocab_size=256, context=context, bidirectional=True)
    lazily = eval_batches(mapped, config, 0, batch)
    assert not isinstance(lazily, list)  # an iterator: batches made as they are read
    for got, (w, t) in zip(lazily, made, strict=True):
        assert np.array_equal(got.inputs, w) and np.array_equal(got.targets, t)


@pytest.mark.parametrize(
    ("n", "context", "batch"), [(2, 4, 3), (5, 4, 3), (41, 8, 2), (300, 16, 7)]
)
def test_chunk_batches_are_made_as_read_in_the_same_order(n: int, context: int, batch: int) -> None:
    from termlm.config import ModelConfig
    from termlm.runtime.evaluation import iter_eval_chunks
    from termlm.training.evaluation import eval_batches

    ids = np.random.default_rng(n).integers(1, 200, n).astype(np.uint16)
    chunks = list(iter_eval_chunks(ids, context))
    full = [c for c in chunks if len(c[0]) == context]
    short = [c for c in chunks if len(c[0]) < context]
    expected = [full[i : i + batch] for i in range(0, len(full), batch)] + (
        [short] if short else []
    )
    made = eval_batches(ids, ModelConfig(arch="lstm", vocab_size=256, context=context), 0, batch)
    assert not isinstance(made, list)
    for got, group in zip(made, expected, strict=True):
        assert got.inputs.dtype == np.int64 and got.targets.dtype == np.int64
        assert np.array_equal(got.inputs, np.stack([x for x, _ in group]))
        assert np.array_equal(got.targets, np.stack([y for _, y in group]))
