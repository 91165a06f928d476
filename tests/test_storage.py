import pytest
import torch

from emowork.storage import atomic_write_json, load_tensors_checked, save_tensors_checked


def test_roundtrip_and_checksum(tmp_path):
    path = tmp_path / "a.safetensors"
    tensors = {"x": torch.arange(6.0).reshape(2, 3)}
    save_tensors_checked(path, tensors)
    assert torch.equal(load_tensors_checked(path)["x"], tensors["x"])
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        load_tensors_checked(path)


def test_missing_checksum_means_incomplete(tmp_path):
    path = tmp_path / "b.safetensors"
    save_tensors_checked(path, {"x": torch.zeros(2)})
    (tmp_path / "b.safetensors.sha256").unlink()
    with pytest.raises(FileNotFoundError):
        load_tensors_checked(path)


def test_atomic_json_writes_standard_json(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_json(path, {"a": float("nan"), "b": [1.0, float("inf")]})
    assert path.read_text().split() == ['{', '"a":', 'null,', '"b":', '[', '1.0,', 'null', ']', '}']
    assert not list(tmp_path.glob("*.tmp"))
