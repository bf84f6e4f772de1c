"""keep_freed_memory: large CPU tensors come from the heap and stay in the process after free, until
return_freed_memory hands them back (a reused trial process between trials)."""
import ctypes
import subprocess
import sys
import textwrap

import pytest

# Run in a child: the settings last for the life of a process.
CHILD = textwrap.dedent("""
    import ctypes, sys, torch
    from scaling.allocator import keep_freed_memory, return_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    took = keep_freed_memory() if sys.argv[1] == "keep" else None
    before = libc.mallinfo2().hblkhd
    block = torch.empty(64 << 20, dtype=torch.uint8).fill_(1)  # 64 MiB, above glibc's mmap ceiling
    mapped = libc.mallinfo2().hblkhd - before
    del block

    def resident() -> int:
        return int(open("/proc/self/statm").read().split()[1]) * 4096

    kept = resident()
    returned = return_freed_memory()
    print(took, mapped, libc.mallinfo2().arena, kept - resident(), returned)
""")


def child(mode: str) -> tuple[str, int, int, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    took, mapped, arena, handed_back, _ = out.stdout.split()
    return took, int(mapped), int(arena), int(handed_back)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_keep_freed_memory_serves_large_blocks_from_the_heap_and_keeps_them():
    try:
        ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        pytest.skip("C library without mallinfo2 (glibc < 2.33)")
    took, mapped, _, _ = child("default")
    assert mapped >= 64 << 20, "by default glibc maps a 64 MiB block (and unmaps it on free)"
    took, mapped, arena, handed_back = child("keep")
    assert took == "True"
    assert mapped == 0, "with the settings the block comes from the heap"
    assert arena >= 64 << 20, "the freed block stays in the heap instead of going back to the OS"
    assert handed_back >= 60 << 20, "return_freed_memory gives the freed block's pages back to the OS"
