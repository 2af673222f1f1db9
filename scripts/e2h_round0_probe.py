"""Round-0 learnability probe for easy_to_hard (a raw torch loop, not the pipeline): a NoPE Llama
trained on reversed addition with operand lengths 1..MAXLEN (default 4), exact match at 2, MAXLEN,
MAXLEN+1 and MAXLEN+2 digits every 500 steps. Usage: OMP_NUM_THREADS=1 python
scripts/e2h_round0_probe.py HIDDEN LAYERS STEPS BATCH THREADS [MAXLEN] [LR]
(measured: python scripts/e2h_round0_probe.py 96 3 6000 64 1). Warmup 10%, stable to 70%, linear
decay to 1% (the paper's warmup-stable-decay shape), AdamW lr LR (default 2e-3), beta2 0.98."""
import random, sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.set_num_threads(int(sys.argv[5]) if len(sys.argv) > 5 else 1)
H, LAYERS, STEPS, BS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
MAXLEN = int(sys.argv[6]) if len(sys.argv) > 6 else 4
LR = float(sys.argv[7]) if len(sys.argv) > 7 else 2e-3
V = {c: i for i, c in enumerate("#<>0123456789+=")}  # pad, bos, eos
def ex(rng, n=None):
    la = n or rng.randint(1, MAXLEN); lb = n or rng.randint(1, MAXLEN)
    a = rng.randint(10**(la-1) if la > 1 else 0, 10**la-1); b = rng.randint(10**(lb-1) if lb > 1 else 0, 10**lb-1)
    p = str(a)[::-1] + "+" + str(b)[::-1] + "="
    t = str(a+b)[::-1].ljust(max(la, lb)+1, "0")
    return p, t
def enc(batch):
    seqs = [[1]+[V[c] for c in p+t]+[2] for p, t in batch]
    L = max(map(len, seqs)); ids = torch.zeros(len(seqs), L, dtype=torch.long); lab = torch.full((len(seqs), L), -100)
    for i, ((p, t), s) in enumerate(zip(batch, seqs)):
        ids[i, :len(s)] = torch.tensor(s); lab[i, 1+len(p):len(s)] = torch.tensor(s[1+len(p):])
    return ids, lab
cfg = LlamaConfig(vocab_size=len(V), hidden_size=H, num_hidden_layers=LAYERS, num_attention_heads=H // 32, num_key_value_heads=H // 32,
  intermediate_size=4*H, max_position_embeddings=256, rope_parameters={"rope_type": "linear", "factor": float("inf"), "rope_theta": 10000.0},
  pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=True)
torch.manual_seed(0); m = LlamaForCausalLM(cfg)
print("params", sum(p.numel() for p in m.parameters())/1e6, "M", flush=True)
opt = torch.optim.AdamW(m.parameters(), lr=LR, betas=(0.9, 0.98), weight_decay=0.01)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s+1)/(0.1*STEPS)) * (1 if s < 0.7*STEPS else max(0.01, 1-(s-0.7*STEPS)/(0.3*STEPS))))
rng = random.Random(0)
@torch.no_grad()
def acc(n, k=128):
    r = random.Random(1000+n); batch = [ex(r, n) for _ in range(k)]
    ids = torch.tensor([[1]+[V[c] for c in p] for p, _ in batch])
    m.eval(); out = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n+2, do_sample=False, pad_token_id=0, eos_token_id=2); m.train()
    inv = {i: c for c, i in V.items()}
    got = ["".join(inv[int(x)] for x in o[ids.shape[1]:] if int(x) > 2) for o in out]
    return sum(g == t for g, (_, t) in zip(got, batch))/k
t0 = time.time(); tok = 0
for s in range(STEPS):
    ids, lab = enc([ex(rng) for _ in range(BS)]); tok += ids.numel()
    loss = m(input_ids=ids, attention_mask=(ids > 0) | (torch.arange(ids.shape[1]) == 0), labels=lab).loss
    loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); sched.step(); opt.zero_grad()
    if (s+1) % 500 == 0 or s+1 == STEPS:
        print(f"step {s+1} loss {loss.item():.4f} {time.time()-t0:.0f}s tok/s {tok/(time.time()-t0):.0f} " + " ".join(f"acc{n} {acc(n):.3f}" for n in (2, MAXLEN, MAXLEN + 1, MAXLEN + 2)), flush=True)
