"""Continue training a tinygrad_mlp model with PyTorch's DistributedDataParallel (DDP).

    tinygrad-mlp train --save digits.npz                              # train here, one machine
    torchrun --nproc_per_node 2 examples/ddp_digits.py digits.npz    # then on many processes

Every process rebuilds the same PyTorch module from the saved model (tm.load_model, then
tm.export.to_torch), DDP averages the gradients across processes after each backward, and each
process trains on its own shard of the data (DistributedSampler). On GPUs use the "nccl"
backend and move the module to the process's device; across machines give torchrun
--nnodes/--node-rank/--rdzv-endpoint. This script uses "gloo", which runs on CPUs.
"""

import sys

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import tinygrad_mlp as tm


def main(path: str, epochs: int = 3) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    trained = tm.load_model(path)
    logits = tm.export.to_torch(trained[:-1])   # no Softmax: torch's CrossEntropyLoss takes logits
    model = DistributedDataParallel(logits)
    X, y = tm.datasets.load_digits()
    data = TensorDataset(torch.from_numpy(X / np.float32(16)), torch.from_numpy(y))
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=32, sampler=sampler)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)              # a different shuffle every epoch, shared by all
        total = torch.zeros(2)
        for inputs, targets in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()                   # DDP all-reduces the gradients here
            optimizer.step()
            total += torch.tensor([loss.item() * len(targets), len(targets)])
        dist.all_reduce(total)                # the mean loss over every process's samples
        if rank == 0:
            print(f"epoch {epoch + 1}/{epochs}: loss {total[0] / total[1]:.4f} "
                  f"on {world} processes")
    if rank == 0:
        with torch.no_grad():
            accuracy = (logits(data.tensors[0]).argmax(1) == data.tensors[1]).float().mean()
        print(f"accuracy on all 1797 digits: {accuracy:.4f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
