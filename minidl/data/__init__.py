"""Datasets, transforms and the DataLoader."""
from minidl.data import datasets, transforms
from minidl.data.dataloader import DataLoader
from minidl.data.datasets import (CIFAR10, MNIST, ArrayDataset, ConcatDataset, Dataset, FashionMNIST, Subset,
                                  TensorDataset, random_split)
from minidl.data.idx import IDXError, read_idx
from minidl.data.sources import ChecksumError, DatasetNotFoundError
