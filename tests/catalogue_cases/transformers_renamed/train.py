"""Fine-tune a small BERT-style classifier with the Trainer, written as transformers 4 tutorials wrote it.

The model is built from a config and the tokenizer from a word list (no download). `evaluation_strategy`,
`no_cuda`, `warmup_ratio`, `logging_dir`, `Trainer(tokenizer=...)` and `transformers.AdamW` are all gone in
transformers 5: the script fails at its first one.
"""
import random

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AdamW, BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast, Trainer
from transformers import TrainingArguments

torch.manual_seed(0)
torch.set_num_threads(1)
random.seed(0)
WORDS = ["good", "great", "fine", "nice", "bad", "awful", "poor", "sad", "the", "movie", "was", "a", "film"]
vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
core.pre_tokenizer = pre_tokenizers.Whitespace()
tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]")


def sentence(label):
    pool = WORDS[:4] if label else WORDS[4:8]
    return " ".join(["the", random.choice(["movie", "film"]), "was", random.choice(pool), random.choice(pool)])


class Reviews(torch.utils.data.Dataset):
    def __init__(self, n):
        self.labels = [i % 2 for i in range(n)]
        self.enc = tokenizer([sentence(y) for y in self.labels], padding="max_length", max_length=8)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": torch.tensor(self.enc["input_ids"][i]),
                "attention_mask": torch.tensor(self.enc["attention_mask"][i]), "labels": self.labels[i]}


def compute_metrics(pred):
    return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}


config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=16, num_labels=2)
model = BertForSequenceClassification(config)
args = TrainingArguments(
    output_dir="out",
    evaluation_strategy="epoch",
    num_train_epochs=4,
    per_device_train_batch_size=16,
    learning_rate=5e-3,
    warmup_ratio=0.1,
    logging_dir="logs",
    no_cuda=True,
    report_to=[],
    save_strategy="no",
)
optimizer = AdamW(model.parameters(), lr=args.learning_rate)
trainer = Trainer(model=model, args=args, train_dataset=Reviews(128), eval_dataset=Reviews(64), tokenizer=tokenizer,
                  compute_metrics=compute_metrics, optimizers=(optimizer, None))
trainer.train()
print(f"accuracy={trainer.evaluate()['eval_accuracy']:.4f}")
