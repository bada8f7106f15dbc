"""``advisor prepare-data``: your text as token files (nanoGPT layout) for ``tokens:DIR``."""
from __future__ import annotations

import click


@click.command("prepare-data")
@click.argument("source", metavar="SOURCE")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for train.bin, val.bin and meta.json.")
@click.option("--tokenizer", "tokenizer_path", type=click.Path(dir_okay=False), default=None,
              help="Your model's Hugging Face tokenizer.json.")
@click.option("--train-bpe", "bpe_vocab", type=int, default=None,
              help="Instead: train a byte-level BPE of this many tokens on SOURCE's training "
                   "files (saved as OUT/tokenizer.json).")
@click.option("--max-mb", type=float, default=None,
              help="Use at most this many MB of SOURCE's training text (held-out: 1/20).")
def prepare_data(source, out_dir, tokenizer_path, bpe_vocab, max_mb):
    """Tokenize SOURCE (stdlib, a .txt file or a folder of .txt files) into OUT/train.bin and
    OUT/val.bin (uint16, uint32 above 65536 tokens) with a real tokenizer; then train on it
    with `data: tokens:OUT` (advisor plan --data tokens:OUT). Held-out files are chosen by
    path hash, as for every text source, and never seen by the BPE trainer."""
    from pathlib import Path

    from advisor.errors import AdvisorError
    from advisor.common.outputs import check_output_dir

    if (tokenizer_path is None) == (bpe_vocab is None):
        raise AdvisorError("give one of --tokenizer tokenizer.json or --train-bpe VOCAB")
    if max_mb is not None and not max_mb > 0:
        raise AdvisorError(f"--max-mb must be positive, got {max_mb}")
    check_output_dir(out_dir, "data folder")
    from calibration.train.tokenize import text_files, train_bpe, write_token_dir

    text_files(source)                     # a missing or empty source: error before work
    max_bytes = None if max_mb is None else int(max_mb * 1e6)
    if bpe_vocab is not None:
        tokenizer_path = Path(out_dir) / "tokenizer.json"
        train_bpe(source, bpe_vocab, tokenizer_path, max_bytes=max_bytes)
        click.echo(f"trained a byte-level BPE of {bpe_vocab} tokens: {tokenizer_path}")
    meta = write_token_dir(source, tokenizer_path, out_dir, max_bytes=max_bytes)
    click.echo(f"wrote {meta['train_tokens']:,} train + {meta['val_tokens']:,} held-out tokens "
               f"({meta['dtype']}, vocabulary {meta['vocab_size']}) to {out_dir}; use "
               f"data tokens:{out_dir}")
