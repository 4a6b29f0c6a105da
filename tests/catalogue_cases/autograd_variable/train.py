import torch
from torch.autograd import Variable

torch.manual_seed(0)
torch.set_num_threads(1)
X = torch.randn(200, 3)
Y = (X[:, 0] + X[:, 2] > 0).float().unsqueeze(1)
w = Variable(torch.zeros(3, 1), requires_grad=True)
b = Variable(torch.zeros(1), requires_grad=True)
for step in range(100):
    x, y = Variable(X), Variable(Y)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(x.mm(w) + b, y)
    loss.backward()
    w.data -= 0.5 * w.grad.data
    b.data -= 0.5 * b.grad.data
    w.grad.data.zero_()
    b.grad.data.zero_()
test = Variable(X, volatile=True)
print(f"accuracy={((test.mm(w) + b > 0).float() == Y).float().mean().item():.4f}")
