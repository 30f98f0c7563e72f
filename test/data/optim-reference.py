"""Reference numbers for test/train-optim.test.ts, from PyTorch (torch.optim, clip_grad_norm_,
OneCycleLR). Lion and Adafactor are not in torch.optim: they are written out below from their
papers' update rules (Adafactor as transformers.optimization.Adafactor runs it with
relative_step=False, scale_parameter=False, beta1=None, warmup_init=False).

    python3 test/data/optim-reference.py      # needs torch; prints the numbers the test holds
"""
import math
import torch

torch.set_printoptions(precision=10)

# Two parameters: a vector that does not decay and a 2x3 matrix that does; three steps with
# these gradients and learning rates.
A0 = [1.0, -2.0, 0.5]
B0 = [[0.3, -0.7, 1.1], [-1.2, 0.4, 0.9]]
GRADS = [
    ([0.5, -1.0, 0.25], [[0.1, 0.2, -0.3], [0.4, -0.5, 0.6]]),
    ([-0.3, 0.8, 0.1], [[-0.2, 0.1, 0.05], [0.3, 0.3, -0.4]]),
    ([0.2, 0.2, -0.6], [[0.05, -0.15, 0.25], [-0.35, 0.45, 0.0]]),
]
LRS = [1e-2, 5e-3, 2e-3]
WD = 0.1


def params():
    return torch.nn.Parameter(torch.tensor(A0)), torch.nn.Parameter(torch.tensor(B0))


def run(make, step=None):
    a, b = params()
    opt = make(a, b)
    out = []
    for (ga, gb), lr in zip(GRADS, LRS):
        a.grad = torch.tensor(ga)
        b.grad = torch.tensor(gb)
        if opt is not None:
            for g in opt.param_groups:
                g['lr'] = lr
            opt.step()
        else:
            step(a, b, lr)
        out.append((a.data.tolist(), b.data.flatten().tolist()))
    return out


def show(name, rows):
    print(name)
    for i, (a, b) in enumerate(rows):
        print(f'  step {i + 1}: a={[float(f"{x:.9g}") for x in a]} b={[float(f"{x:.9g}") for x in b]}')


show('adamw', run(lambda a, b: torch.optim.AdamW([{'params': [b], 'weight_decay': WD}, {'params': [a], 'weight_decay': 0.0}], lr=1, betas=(0.9, 0.95), eps=1e-8)))
show('sgd', run(lambda a, b: torch.optim.SGD([{'params': [b], 'weight_decay': WD}, {'params': [a], 'weight_decay': 0.0}], lr=1, momentum=0.9)))
show('sgd nesterov', run(lambda a, b: torch.optim.SGD([{'params': [b], 'weight_decay': WD}, {'params': [a], 'weight_decay': 0.0}], lr=1, momentum=0.9, nesterov=True)))

lion_m = {}


def lion_step(a, b, lr, beta1=0.9, beta2=0.99):
    for p, wd in ((a, 0.0), (b, WD)):
        m = lion_m.setdefault(id(p), torch.zeros_like(p))
        with torch.no_grad():
            p.mul_(1 - lr * wd)
            p.add_(torch.sign(beta1 * m + (1 - beta1) * p.grad), alpha=-lr)
            m.mul_(beta2).add_(p.grad, alpha=1 - beta2)


show('lion', run(lambda a, b: None, lion_step))

ada_state = {}


def rms(t):
    return t.norm(2) / (t.numel() ** 0.5)


def adafactor_step(a, b, lr, eps1=1e-30, clip=1.0, decay_rate=-0.8):
    for p, wd in ((a, 0.0), (b, WD)):
        s = ada_state.setdefault(id(p), {'step': 0})
        s['step'] += 1
        beta2t = 1.0 - math.pow(s['step'], decay_rate)
        sq = p.grad ** 2 + eps1
        if p.dim() >= 2:
            row = s.setdefault('row', torch.zeros(p.shape[:-1]))
            col = s.setdefault('col', torch.zeros(p.shape[:-2] + p.shape[-1:]))
            row.mul_(beta2t).add_(sq.mean(dim=-1), alpha=1 - beta2t)
            col.mul_(beta2t).add_(sq.mean(dim=-2), alpha=1 - beta2t)
            r = (row / row.mean(dim=-1, keepdim=True)).rsqrt().unsqueeze(-1)
            c = col.unsqueeze(-2).rsqrt()
            update = r * c * p.grad
        else:
            v = s.setdefault('v', torch.zeros_like(p))
            v.mul_(beta2t).add_(sq, alpha=1 - beta2t)
            update = v.rsqrt() * p.grad
        update = update / (rms(update) / clip).clamp(min=1.0)
        update = update * lr
        with torch.no_grad():
            p.add_(p, alpha=-wd * lr)
            p.add_(-update)


show('adafactor', run(lambda a, b: None, adafactor_step))

a, b = params()
a.grad = torch.tensor(GRADS[0][0])
b.grad = torch.tensor(GRADS[0][1])
norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
print('clip_grad_norm_ 1.0: norm', float(norm), 'a.grad', a.grad.tolist(), 'b.grad', b.grad.flatten().tolist())

opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=100)
lrs = []
for _ in range(100):
    lrs.append(opt.param_groups[0]['lr'])
    opt.step()
    sched.step()
print('onecycle', {i: lrs[i] for i in (0, 1, 15, 29, 30, 31, 64, 98, 99)})
