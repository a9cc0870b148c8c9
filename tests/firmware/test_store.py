"""gwbox.store: atomic save with a checksum, last-good fallback, a power cut at every step."""
from fakefs import FakeFs, PowerCut
from gwbox import POLICY_MAX
from gwbox.store import CRASH_LIMIT, Store, StoreError

P = "gwbox.policy"
OLD = "[GENERAL]\nIdentity = old-box\n" + "# padding\n" * 20
NEW = "[GENERAL]\nIdentity = new-box\n" + "# more padding\n" * 30


def must_be_policy(text):
    if not text.startswith("[GENERAL]\nIdentity = "):
        raise ValueError("line 1: not a policy")


def stored(*texts):
    """A disk on which each of `texts` was saved in turn."""
    fs = FakeFs()
    for t in texts:
        Store(P, fs).save(t)
    return fs.disk


def test_save_then_load_and_the_previous_one_is_kept_as_last_good():
    disk = stored(OLD, NEW)
    assert sorted(disk) == [P, P + ".bak"]
    assert disk[P].startswith(b"#gwbox-policy ") and disk[P].endswith(NEW.encode())
    text, path, notes = Store(P, FakeFs(disk)).load(must_be_policy)
    assert (text, path, notes) == (NEW, P, [])
    assert Store(P, FakeFs(disk)).read(P + ".bak") == OLD


def test_save_steps_are_temp_file_write_flush_close_then_renames():
    fs = FakeFs(stored(OLD))
    Store(P, fs).save(NEW)
    kinds = [s.split()[0] + " " + s.split()[1] for s in fs.done]
    assert kinds == ["open gwbox.policy.tmp", "write gwbox.policy.tmp", "write gwbox.policy.tmp",
                     "flush gwbox.policy.tmp", "close gwbox.policy.tmp", "rename gwbox.policy",
                     "rename gwbox.policy.tmp"], fs.done


def check_cut(torn):
    base = stored(OLD)
    steps = FakeFs(base)
    Store(P, steps).save(NEW)
    n = steps.steps
    outcomes = []
    for cut in range(1, n + 2):
        fs = FakeFs(base, cut_at=cut, torn=torn)
        try:
            Store(P, fs).save(NEW)
            assert cut == n + 1
        except PowerCut:
            assert cut <= n
        text, path, notes = Store(P, FakeFs(fs.disk)).load(must_be_policy)
        assert text in (OLD, NEW), (cut, torn, text)
        if text == OLD:
            assert path in (P, P + ".bak")
            assert (path == P) == (notes == []), (cut, notes)  # a fallback always says so
        outcomes.append(text == NEW)
    assert outcomes == [False] * n + [True]  # the new policy counts only once save returned


def test_power_cut_at_every_step_of_save_leaves_the_last_good_policy():
    check_cut(torn=False)


def test_power_cut_with_half_written_pages_leaves_the_last_good_policy():
    check_cut(torn=True)


def test_first_save_cut_at_every_step_leaves_no_policy_or_the_whole_one():
    n = 0
    while True:
        n += 1
        fs = FakeFs(cut_at=n)
        try:
            Store(P, fs).save(NEW)
        except PowerCut:
            text, path, notes = Store(P, FakeFs(fs.disk)).load(must_be_policy)
            assert text is None and "safe mode" in notes[-1]
            continue
        break
    assert Store(P, FakeFs(fs.disk)).load(must_be_policy)[0] == NEW


def test_corrupt_file_falls_back_to_the_last_good_and_says_so():
    disk = stored(OLD, NEW)
    raw = bytearray(disk[P])
    raw[-5] ^= 0x20
    disk[P] = bytes(raw)
    text, path, notes = Store(P, FakeFs(disk)).load(must_be_policy)
    assert (text, path) == (OLD, P + ".bak")
    assert notes == ["gwbox.policy: checksum mismatch (corrupt)", "using the last good policy, gwbox.policy.bak"]


def test_half_written_file_falls_back_and_says_so():
    disk = stored(OLD, NEW)
    disk[P] = disk[P][:60]
    text, path, notes = Store(P, FakeFs(disk)).load(must_be_policy)
    assert text == OLD and notes[0].startswith("gwbox.policy: incomplete (")


def test_a_policy_that_does_not_pass_the_check_falls_back_with_its_first_error():
    disk = stored(OLD)
    disk[P + ".bak"] = disk[P]
    disk[P] = b"[GENERAL]\nHeartbeat = SOMETIMES\n"  # hand-written: no checksum line

    def check(text):
        if "SOMETIMES" in text:
            raise ValueError("line 2: [GENERAL] Heartbeat: must be NONE, DEFERRED or INSTANT\nline 3: x")
        must_be_policy(text)

    text, path, notes = Store(P, FakeFs(disk)).load(check)
    assert text == OLD
    assert notes[0] == "gwbox.policy: line 2: [GENERAL] Heartbeat: must be NONE, DEFERRED or INSTANT (and 1 more)"


def test_a_hand_written_policy_without_checksum_line_is_taken_as_it_is():
    text, path, notes = Store(P, FakeFs({P: OLD.encode()})).load(must_be_policy)
    assert (text, path, notes) == (OLD, P, [])


def test_nothing_loadable_says_safe_mode():
    text, path, notes = Store(P, FakeFs()).load(must_be_policy)
    assert text is None and path is None
    assert notes == ["gwbox.policy: missing",
                     "no policy can be loaded: the box starts in safe mode; load and save one on the console"]


def test_saving_over_a_corrupt_policy_keeps_the_good_backup():
    disk = stored(OLD, NEW)
    disk[P] = b"#gwbox-policy 0000000000000000 3\nxyz"
    fs = FakeFs(disk)
    Store(P, fs).save(NEW)
    assert Store(P, fs).read(P + ".bak") == OLD and Store(P, fs).read(P) == NEW


def test_fat_rename_that_refuses_an_existing_target_still_saves():
    fs = FakeFs(stored(OLD), fat=True)
    Store(P, fs).save(NEW)
    assert Store(P, fs).load(must_be_policy)[0] == NEW and Store(P, fs).read(P + ".bak") == OLD


def test_too_large_is_refused_before_anything_is_written():
    fs = FakeFs(stored(OLD))
    try:
        Store(P, fs).save("#" * 20000)
        raise AssertionError("saved")
    except StoreError as e:
        assert "larger than" in str(e)
    assert fs.steps == 0


def test_the_limit_is_policy_max():
    # One constant for the console's load, the store and `gwbox config check` (docs/console.md);
    # a policy of exactly POLICY_MAX bytes is saved in tests/host/test_cli_config.py (CPython:
    # the fake disk's copies of it do not fit a 64K heap).
    assert POLICY_MAX == 12288
    fs = FakeFs(stored(OLD))
    try:
        Store(P, fs).save("#" * (POLICY_MAX + 1))
        raise AssertionError("saved %d bytes" % (POLICY_MAX + 1))
    except StoreError as e:
        assert str(e) == "the policy is larger than %d bytes" % POLICY_MAX, e
    assert fs.steps == 0


class _Endless:
    """A file system whose every file goes on for ever."""

    def open(self, path, mode):
        return self

    def read(self, n=-1):
        return b"#" * n

    def close(self):
        pass


def test_a_file_is_read_in_pieces_whole_and_one_too_large_is_refused():
    # read() takes 512 bytes at a time (f.read(16448) would take 16 KB of heap at once on MicroPython)
    big = "[GENERAL]\nIdentity = big-box\n" + "# padding to several pieces\n" * 100  # 2,829 bytes
    disk = stored(big)
    assert Store(P, FakeFs(disk)).load(must_be_policy)[0] == big
    try:
        Store(P, _Endless()).read(P)  # stops reading once it is too large, whatever the file's size
        raise AssertionError("read")
    except StoreError as e:
        assert str(e) == "larger than %d bytes" % POLICY_MAX, e


def test_boot_record_counts_and_carries_the_safe_flag_once():
    fs = FakeFs()
    s = Store("/flash/gwbox.policy", fs)
    assert s.boot_path == "/flash/gwbox.boot"
    assert s.boot_record() == (0, False)
    s.write_boot_record(2)
    assert s.boot_record() == (2, False)
    s.write_boot_record(0, True)
    assert s.boot_record() == (0, True)
    fs.disk["/flash/gwbox.boot"] = b"\xff\x00"  # torn by a power cut: counts from nothing
    assert s.boot_record() == (0, False)
    assert CRASH_LIMIT == 3


class ReadOnlyFs(FakeFs):
    def open(self, path, mode):
        if "w" in mode:
            raise OSError(30)  # EROFS
        return FakeFs.open(self, path, mode)


def test_boot_record_on_a_read_only_file_system_never_raises():
    s = Store(P, ReadOnlyFs())
    s.write_boot_record(1)
    assert s.boot_record() == (0, False)
