"""gwbox_tools.chip.images and .firmware: the emulated chip's flash, built from this tree.

No chip runs here: the flash is read back with the same libraries (UF2 blocks, littlefs,
the ROMFS header) and compared with what went in.
"""
import gzip
import struct

import pytest

from gwbox_tools import romfs_image
from gwbox_tools.chip import firmware, images


def uf2_block(addr, data, flags=0x2000, family=images.UF2_FAMILY_RP2040, magic_end=0x0AB16F30):
    head = struct.pack("<8I", 0x0A324655, 0x9E5D5157, flags, addr, len(data), 0, 1, family)
    return head + data + bytes(476 - len(data)) + struct.pack("<I", magic_end)


def test_uf2_blocks_land_at_their_flash_offsets(tmp_path):
    p = tmp_path / "a.uf2.gz"
    p.write_bytes(gzip.compress(uf2_block(0x10000000, b"boot2" * 10) + uf2_block(0x10000100, b"\x01" * 256)))
    flash = images.flash_image(str(p), "pico")
    assert len(flash) == images.FLASH_SIZE
    assert flash[:50] == b"boot2" * 10 and flash[50:0x100] == b"\xff" * (0x100 - 50)
    assert flash[0x100:0x200] == b"\x01" * 256 and flash[0x200:0x300] == b"\xff" * 0x100


@pytest.mark.parametrize("block, why", [
    (uf2_block(0x10000000, b"x", magic_end=0), "bad magic"),
    (uf2_block(0x20000000, b"x"), "outside the 2 MiB flash"),
    (uf2_block(0x10000000, b"x", family=0x12345678), "not the RP2040"),
    (uf2_block(0x10000000, b"x")[:300], "512-byte"),
])
def test_a_bad_uf2_is_refused_with_the_reason(tmp_path, block, why):
    p = tmp_path / "bad.uf2"
    p.write_bytes(block)
    with pytest.raises(images.ImageError, match=why):
        images.read_uf2(str(p))


def test_an_image_over_the_file_system_partition_is_refused(tmp_path):
    p = tmp_path / "big.uf2"
    p.write_bytes(uf2_block(0x10000000 + 0xA0000, b"x"))
    with pytest.raises(images.ImageError, match="inside the file system"):
        images.flash_image(str(p), "pico")


@pytest.mark.parametrize("layout", sorted(images.LAYOUTS))
def test_an_image_without_romfs_may_use_the_romfs_partitions_flash(tmp_path, layout):
    # A frozen image of a stock board ends past where a ROMFS board's partition starts.
    lfs_off, _lfs_size, rom_off, _rom_size = images.LAYOUTS[layout]
    p = tmp_path / "frozen.uf2"
    p.write_bytes(uf2_block(0x10000000 + rom_off, b"code"))
    assert images.flash_image(str(p), layout)[rom_off:rom_off + 4] == b"code"
    with pytest.raises(images.ImageError, match="inside the file system"):
        images.flash_image(str(p), layout, romfs=romfs_image.build_image({"gwbox/x.mpy": b"abc"}))


@pytest.mark.parametrize("layout", sorted(images.LAYOUTS))
def test_romfs_and_littlefs_go_to_the_partitions_of_the_layout(tmp_path, layout):
    p = tmp_path / "a.uf2"
    p.write_bytes(uf2_block(0x10000000, b"boot"))
    files = {"main.py": b"print(1)\n", "gwbox/sa.mpy": bytes(range(256)) * 20, "board.mpy": b"M\x06"}
    rom = romfs_image.build_image({"gwbox/x.mpy": b"abc"})
    flash = images.flash_image(str(p), layout, romfs=rom, files=files)
    lfs_off, _lfs_size, rom_off, _rom_size = images.LAYOUTS[layout]
    assert flash[rom_off:rom_off + len(rom)] == rom
    assert romfs_image.image_length(flash[rom_off:rom_off + 16]) == len(rom)
    assert images.read_littlefs(flash, layout) == files
    with pytest.raises(images.ImageError, match="partition holds"):
        images.flash_image(str(p), layout, romfs=bytes(300 * 1024))


def test_every_named_image_is_in_shared_tools():
    assert images.rp2_tools(), "shared/tools/rp2 is missing (GWBOX_RP2_TOOLS)"
    for name in images.IMAGES:
        blocks = images.read_uf2(images.image_path(name))
        assert 0 in blocks  # the second-stage boot loader


def test_the_forms_put_the_package_where_each_loads_it():
    rom, files = firmware.layout("romfs", board="pico_w", main=True)
    assert "main.py" in files and "board.mpy" in files
    assert not any("/" in p for p in files)  # the package is in the image, not beside it
    assert romfs_image.image_length(rom) == len(rom)
    rom, files = firmware.layout("littlefs", main=False)
    assert rom is None and "gwbox/box.mpy" in files and "main.py" not in files
    assert not any(p.endswith(".py") for p in files)
    assert "gwbox/port/host_aes.mpy" not in files  # host-only modules stay off the chip
    rom, files = firmware.layout("frozen", board="pico_w", extra={"gwbox.policy": b"x"})
    assert rom is None and sorted(files) == ["board.mpy", "gwbox.policy", "main.py"]
