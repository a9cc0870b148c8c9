"""boards/: one folder per board; each freeze manifest takes the whole firmware but the
host-only modules (the same list `gwbox deploy` skips), main.py and the board file; each
board file names what gwbox.start reads."""
import importlib.util
import os

import pytest

from gwbox_tools import deploy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOARDS = os.path.join(ROOT, "boards")
DEVICE_BOARDS = ("esp32", "pico_emu", "pico_w")
NEEDED = ("BOARD", "UART_ID", "BAUD", "TX", "RX", "RXBUF", "DCD", "DTR", "LED", "WDT_MS", "POLICY", "SAFE_WAIT_MS")


class Manifest:
    """Just enough of MicroPython's tools/manifestfile.py (freeze mode) to list a manifest's files:
    relative paths from the including manifest's folder, $(...) includes (the port's own) skipped."""

    def __init__(self):
        self.files = []
        self.host_only = None

    def include(self, path):
        if path.startswith("$("):
            return
        path = os.path.abspath(path)
        prev = os.getcwd()
        os.chdir(os.path.dirname(path))
        try:
            g = {"include": self.include, "package": self.package, "module": self.module, "require": lambda *a, **k: None}
            with open(path) as f:
                exec(f.read(), g)
            self.host_only = g.get("HOST_ONLY", self.host_only)
        finally:
            os.chdir(prev)

    def package(self, name, files=None, base_path=".", opt=None):
        assert files, "the gwbox package is frozen from an explicit list (no host-only modules)"
        for f in files:
            assert os.path.isfile(os.path.join(base_path, name, f)), f
            self.files.append(name + "/" + f)

    def module(self, path, base_path=".", opt=None):
        assert os.path.isfile(os.path.join(base_path, path)), path
        self.files.append(path)


@pytest.mark.parametrize("board", DEVICE_BOARDS)
def test_manifest_freezes_the_firmware_but_no_host_only_module(board):
    m = Manifest()
    m.include(os.path.join(BOARDS, board, "manifest.py"))
    want = sorted(deploy.firmware_sources(os.path.join(ROOT, "firmware")) + ["board.py"])
    assert sorted(m.files) == want
    assert tuple(m.host_only) == deploy.HOST_ONLY
    assert not [f for f in m.files if deploy.is_host_only(f)]


@pytest.mark.parametrize("board", DEVICE_BOARDS + ("unix",))
def test_board_file_names_what_the_firmware_reads(board):
    spec = importlib.util.spec_from_file_location("board_" + board, os.path.join(BOARDS, board, "board.py"))
    b = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(b)  # board files import hardware modules only inside their functions
    for name in NEEDED:
        assert hasattr(b, name), (board, name)
    assert b.BOARD == board
    if board != "unix":
        assert callable(b.safe_button) and callable(b.entropy) and b.SAFE_WAIT_MS == 3000
        assert len(b.LAN_UART) == 4 and b.WDT_MS > 0


def test_readme_has_each_board_and_its_exact_build_line():
    text = open(os.path.join(BOARDS, "README.md")).read()
    assert "make BOARD=ESP32_GENERIC FROZEN_MANIFEST=$GWBOX/boards/esp32/manifest.py" in text
    assert "make BOARD=RPI_PICO_W FROZEN_MANIFEST=$GWBOX/boards/pico_w/manifest.py" in text
    for board in DEVICE_BOARDS:
        assert "`boards/%s/`" % board in text


def test_boards_are_folders_with_a_board_file():
    found = sorted(d for d in os.listdir(BOARDS) if os.path.isfile(os.path.join(BOARDS, d, "board.py")))
    assert found == ["esp32", "pico_emu", "pico_w", "unix"]
