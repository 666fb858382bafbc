"""``cupy.cuda.nccl`` on MPI: ranks holding the same unique id form one communicator."""
from __future__ import annotations

import ctypes
import os
import zlib

import numpy as np

available = True
NCCL_SUM = 0
NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64 = 6, 7, 8
_DTYPES = {NCCL_FLOAT16: np.float16, NCCL_FLOAT32: np.float32, NCCL_FLOAT64: np.float64}


def get_unique_id():
    return os.urandom(128)


class NcclCommunicator:
    def __init__(self, ndev: int, commId, rank: int):
        from mpi4py import MPI

        self.comm = MPI.COMM_WORLD.Split(zlib.crc32(commId) & 0x7FFFFFFF, rank)
        if self.comm.Get_size() != ndev:
            raise RuntimeError(f"NCCL: {self.comm.Get_size()} ranks joined, {ndev} expected")

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int, stream: int) -> None:
        from mpi4py import MPI

        if op != NCCL_SUM:
            raise NotImplementedError("fake NCCL: only NCCL_SUM")
        dt = np.dtype(_DTYPES[datatype])
        nbytes = count * dt.itemsize
        recv = np.frombuffer((ctypes.c_char * nbytes).from_address(recvbuf), dt)
        if sendbuf == recvbuf:
            self.comm.Allreduce(MPI.IN_PLACE, recv, op=MPI.SUM)
        else:
            send = np.frombuffer((ctypes.c_char * nbytes).from_address(sendbuf), dt)
            self.comm.Allreduce(send, recv, op=MPI.SUM)

    def destroy(self) -> None:
        self.comm.Free()
