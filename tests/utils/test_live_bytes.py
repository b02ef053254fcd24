"""LiveTensorBytes: a hand-worked sequence of allocations, views, in-place ops and frees."""
import torch

from opentad.utils.live_bytes import LiveTensorBytes


def test_counts_new_storage_until_its_last_tensor_is_gone():
    before = torch.zeros(1000)  # 4000 bytes made before the context: never counted
    with LiveTensorBytes() as meter:
        a = before * 2  # +4000 -> 4000
        b = a + 1  # +4000 -> 8000 (the peak)
        del a  # -> 4000
        view = b.view(10, 100)  # same storage: nothing new
        part = before[:10]  # a view of the old storage: not counted
        c = torch.empty(250, dtype=torch.float64)  # +2000 -> 6000
        b.mul_(3)  # in place: nothing new
        assert meter.live == 6000
    assert (meter.peak, meter.allocated) == (8000, 10000)
    del b
    assert meter.live == 6000  # the view still holds b's storage
    del view
    assert meter.live == 2000
    del c, part
    assert meter.live == 0


def test_peak_of_a_chain_against_a_brute_force_count():
    """y = ((x + 1) * 2).sum(): at most two full-size temporaries alive at once, then one scalar."""
    x = torch.ones(64, 64)
    with LiveTensorBytes() as meter:
        y = ((x + 1) * 2).sum()
    full = 64 * 64 * 4
    assert meter.peak == 2 * full  # x + 1 is alive while (x + 1) * 2 is made
    assert meter.allocated == 2 * full + 4
    assert float(y) == 64 * 64 * 4
