"""Point-to-point exchange: two ranks swap equally shaped arrays in one MPI_Sendrecv.

Used where a rank needs exactly one other rank's data (Mixup/CutMix of a global batch
pairs each rank with one peer), which costs one message each way instead of a
collective over everyone. Host (NumPy) arrays; the wait runs under the watchdog.
"""
from __future__ import annotations

import numpy as np

from lucid.distributed import comm as _comm
from lucid.distributed.group import ProcessGroup
from lucid.distributed.watchdog import watch

_TAG = 0x6C70  # this module's message tag


def sendrecv(array: np.ndarray, peer: int, group: ProcessGroup | None = None) -> np.ndarray:
    """Send ``array`` to ``peer`` (a rank of ``group``, None: the world) and return the
    array of the same shape and dtype that ``peer`` sends back; both ranks call it with
    each other as the peer. ``peer`` equal to this rank returns a copy."""
    g = _comm.resolve(group)
    comm = g.member_comm("sendrecv")
    if not 0 <= peer < g.size:
        raise ValueError(f"sendrecv: peer {peer} is outside [0, {g.size - 1}] of the process group")
    send = np.ascontiguousarray(array)
    if peer == comm.Get_rank():
        return send.copy()
    recv = np.empty_like(send)
    with watch(f"sendrecv(peer={peer})"):
        comm.Sendrecv(send, dest=peer, sendtag=_TAG, recvbuf=recv, source=peer, recvtag=_TAG)
    return recv
