"""Choosing the Keras backend, importing Keras once, and joining a multi-process run.

The backend is fixed when Keras is first imported: `--backend` (or
KERAS_BACKEND) must be settled before that, which is why every command that
builds a model calls `select_backend` first. JAX and torch are optional
extras; asking for one that is not installed names the extra to install.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from .errors import RunError, fail

BACKENDS = ("tensorflow", "jax", "torch")


def select_backend(name: str | None) -> str:
    """Fix the Keras backend before Keras is imported: `name`, else KERAS_BACKEND, else tensorflow."""
    chosen = name or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if chosen not in BACKENDS:
        raise fail(RunError, "--backend", f"unknown Keras backend '{chosen}'", f"use one of: {', '.join(BACKENDS)}")
    keras = sys.modules.get("keras")
    if keras is not None and getattr(keras, "__version__", None) and keras.backend.backend() != chosen:
        raise fail(RunError, "--backend", f"Keras is already running on {keras.backend.backend()}, not {chosen}",
                   "the backend is chosen once per process")
    if importlib.util.find_spec(chosen) is None:
        raise fail(RunError, "--backend", f"the {chosen} backend is not installed",
                   f"install it with the extra: pip install 'kspec[{chosen}]'")
    os.environ["KERAS_BACKEND"] = chosen
    return chosen


@contextmanager
def stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null (C++ logging bypasses sys.stderr), e.g. while TensorFlow loads."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_keras(cpu_devices: int | None = None) -> Any:
    """Import Keras, without TensorFlow's start-up log lines.

    TensorFlow's C++ start-up logging (oneDNN, CUDA probing) ignores
    TF_CPP_MIN_LOG_LEVEL for its first lines, so stderr is silenced while the
    backend loads; a failing import still raises a Python exception.

    Args:
        cpu_devices: split the CPU into this many logical devices (TensorFlow
            backend), so that multi-device training can run without GPUs.
    """
    if "keras" in sys.modules and getattr(sys.modules["keras"], "__version__", None):
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_silenced():
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")  # e.g. retracing notes, which are not the user's to act on
        if cpu_devices and keras.backend.backend() == "tensorflow":
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
        keras.ops.zeros(())  # first device use, where CUDA probing logs
    return keras


@dataclass(frozen=True)
class Cluster:
    """This process's place in a multi-process run (JAX's distributed runtime)."""

    coordinator: str
    num_processes: int
    process_id: int

    @property
    def is_chief(self) -> bool:
        return self.process_id == 0

    @classmethod
    def from_options(cls, coordinator: str | None, num_processes: int | None, process_id: int | None) -> Cluster:
        """Flags first, then JAX's standard environment variables; everything checked before joining."""
        coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")
        if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
            num_processes = _int_from_env("JAX_NUM_PROCESSES")
        if process_id is None and os.environ.get("JAX_PROCESS_ID"):
            process_id = _int_from_env("JAX_PROCESS_ID")
        missing = [flag for flag, value in (("--coordinator", coordinator), ("--num-processes", num_processes),
                                            ("--process-id", process_id)) if value is None]
        if missing:
            raise fail(RunError, "--distributed", f"distributed training needs {', '.join(missing)}",
                       "give --coordinator HOST:PORT --num-processes N --process-id I, or set "
                       "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID")
        assert coordinator is not None and num_processes is not None and process_id is not None
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise fail(RunError, "--coordinator", f"'{coordinator}' is not HOST:PORT", "e.g. 10.0.0.1:1234")
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise fail(RunError, "--process-id", f"process id {process_id} is outside 0..{num_processes - 1}",
                       "number the processes 0, 1, ... N-1, with 0 on the coordinator's host")
        return cls(coordinator, num_processes, process_id)

    def join(self, timeout_s: int = 300) -> None:
        """Join the other processes (JAX backend); CPU-only processes talk through gloo."""
        import jax

        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        try:
            jax.distributed.initialize(coordinator_address=self.coordinator, num_processes=self.num_processes,
                                       process_id=self.process_id, initialization_timeout=timeout_s)
        except Exception as exc:  # unreachable coordinator, timeout, mismatched counts
            raise fail(RunError, "--coordinator", f"cannot join the distributed run at {self.coordinator}: "
                       f"{' '.join(str(exc).split())}", "start every process with the same --coordinator and "
                       "--num-processes, each with its own --process-id") from None


def _int_from_env(name: str) -> int:
    value = os.environ[name]
    if not value.lstrip("-").isdigit():
        raise fail(RunError, name, f"{name}={value!r} is not a whole number")
    return int(value)
