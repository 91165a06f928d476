import pytest
import torch

from emowork.model.devices import available_devices, resolve_device, resolve_dtype
from emowork.errors import DeviceError


def test_auto_device_prefers_cuda_then_mps_then_cpu():
    device = resolve_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device.type == "cpu"


def test_auto_dtype_is_bf16_on_cuda_fp32_on_cpu():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("bf16") == torch.bfloat16
    assert resolve_dtype(torch.float16) == torch.float16


@pytest.mark.parametrize("name", ["tpu", "cuda:banana", "gpu0"])
def test_impossible_device_names_say_what_exists(name):
    with pytest.raises(DeviceError) as info:
        resolve_device(name)
    assert "cpu" in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_cuda_index_beyond_count():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    with pytest.raises(DeviceError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


def test_unknown_dtype():
    with pytest.raises(DeviceError, match="Unknown dtype"):
        resolve_dtype("float8")


def test_available_devices_lists_cpu():
    assert available_devices()[0] == "cpu"
