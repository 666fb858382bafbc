"""Process groups: the set of ranks a collective, a DDP model or a SyncBatchNorm runs over.

A ``ProcessGroup`` wraps one MPI communicator. The world group (every rank) is the
default wherever a ``group`` / ``process_group`` argument is left out;
``lucid.distributed.new_group(ranks)`` (in ``comm``) makes a smaller one. Every rank
calls it with the same list, members and non-members alike; the ranks first exchange
the lists they were given and check them here, so a list that is invalid or differs
between ranks raises the same error on every rank instead of hanging.
"""
from __future__ import annotations

from typing import Any, Sequence


class ProcessGroup:
    """A set of ranks and the communicator they share.

    Attributes:
        comm: the MPI communicator (None on a rank that is not a member).
        ranks: the members' world ranks, ascending; group rank i is ``ranks[i]``.
    """

    def __init__(self, comm: Any, ranks: Sequence[int]):
        self.comm = comm
        self.ranks = tuple(ranks)

    @property
    def is_member(self) -> bool:
        return self.comm is not None

    @property
    def rank(self) -> int:
        """This process's rank within the group."""
        return self.member_comm("rank").Get_rank()

    @property
    def size(self) -> int:
        return len(self.ranks)

    def member_comm(self, what: str) -> Any:
        """The communicator, or a ValueError naming ``what`` when this rank is not a member."""
        if self.comm is None:
            from mpi4py import MPI

            raise ValueError(
                f"{what}: world rank {MPI.COMM_WORLD.Get_rank()} is not a member of the process group "
                f"of ranks {list(self.ranks)}"
            )
        return self.comm

    def dup(self) -> "ProcessGroup":
        """The same ranks on a private communicator (traffic on it never meets this group's)."""
        return ProcessGroup(self.member_comm("ProcessGroup.dup").Dup(), self.ranks)

    def __repr__(self) -> str:
        return f"ProcessGroup(ranks={list(self.ranks)})"


def check_ranks(requested: list, world_size: int) -> list[int]:
    """The requested rank lists of every rank (in rank order) -> the sorted member list.

    Raises ValueError for lists that differ between ranks, ranks that are not integers
    in [0, world_size), duplicates and an empty list.
    """
    first = requested[0]
    if not isinstance(first, list):
        raise TypeError(f"new_group: ranks must be a sequence of ints, got {first}")
    for r, ranks in enumerate(requested):
        if ranks != first:
            raise ValueError(f"new_group: every rank must pass the same ranks; rank 0 passed {first}, rank {r} passed {ranks}")
    if not first:
        raise ValueError("new_group: ranks is empty; a group needs at least one rank")
    bad = [x for x in first if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < world_size]
    if bad:
        raise ValueError(f"new_group: ranks {bad} are out of range for a world of {world_size} ranks (valid: 0..{world_size - 1})")
    dups = sorted({x for x in first if first.count(x) > 1})
    if dups:
        raise ValueError(f"new_group: ranks {dups} are listed more than once in {first}")
    return sorted(first)
