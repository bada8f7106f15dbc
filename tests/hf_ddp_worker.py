"""One rank of the two-process Trainer run of tests/test_hf_trainer_run.py (launched by
torch.distributed.run): trains the tiny Llama with the exported TrainingArguments and writes
how many sequences this rank drew and the LR at each step."""
import json
import sys

import torch
import transformers

SEQ_LEN = 64


class CountingDataset(torch.utils.data.Dataset):
    """Random token sequences (seed 0) that count how many were drawn."""

    def __init__(self, n):
        self.ids = torch.randint(0, 64, (n, SEQ_LEN), generator=torch.Generator().manual_seed(0))
        self.seen = 0

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        self.seen += 1
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class LrRecorder(transformers.TrainerCallback):
    """The LR of the first parameter group at the start of every optimizer step."""

    def __init__(self):
        self.lrs = []

    def on_step_begin(self, args, state, control, optimizer=None, **kw):
        self.lrs.append(optimizer.param_groups[0]["lr"])


def main(args_json, out_prefix, n_sequences):
    torch.set_num_threads(1)
    d = json.loads(open(args_json).read())
    (args,) = transformers.HfArgumentParser(transformers.TrainingArguments).parse_dict(d)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=SEQ_LEN))
    data, lrs = CountingDataset(int(n_sequences)), LrRecorder()
    out = transformers.Trainer(model=model, args=args, train_dataset=data,
                               callbacks=[lrs]).train()
    rank = args.process_index
    with open(f"{out_prefix}.{rank}.json", "w") as f:
        json.dump({"seen": data.seen, "steps": out.global_step, "lrs": lrs.lrs,
                   "world_size": args.world_size}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
