"""What the train stages (sft, dpo, grpo) share: the TRL training loop (`fit`), training rows
against `max_length` (`lengths`), the options every trainer has (`options`), launching it in
several processes (`launch`), resuming from trainer checkpoints (`checkpoints`), LoRA adapters
(`lora`) and choosing the best checkpoint on validation (`selection`). The stages themselves
live in `stages/`, above this package: nothing here imports them."""
