"""Keep TensorFlow's start-up log lines (oneDNN notice, CUDA stubs, cuInit) off the terminal.

TensorFlow 2.21 writes them from C++ through absl *before* absl's logging is initialised, so
TF_CPP_MIN_LOG_LEVEL does not stop all of them ("failed call to cuInit" is an E-level line that
looks like a failure on every machine without a GPU). `capture_stderr` therefore points file
descriptor 2 at a temporary file while TensorFlow is imported and its devices are listed, then
replays every line that is not known start-up noise, so real errors still reach the user.

`edgekit --verbose` (or EDGEKIT_VERBOSE=1) turns all of this off and shows everything.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

VERBOSE_ENV = "EDGEKIT_VERBOSE"

# Lines TensorFlow/absl print on a healthy start-up (and their continuation lines).
_NOISE = re.compile(
    r"(All log messages before absl::InitializeLog|oneDNN custom operations are on"
    r"|cudart_stub\.cc|cuda_platform\.cc|failed call to cuInit|Could not find cuda drivers"
    r"|cpu_feature_guard\.cc|To enable the following instructions|rebuild TensorFlow with"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered"
    r"|TF-TRT Warning|This TensorFlow binary is optimized|cuda_dnn\.cc|cuda_fft\.cc"
    r"|cuda_blas\.cc|absl::InitializeLog|Created TensorFlow Lite XNNPACK delegate)"
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def configure(verbose_flag: bool = False) -> None:
    """Set the environment before anything imports TensorFlow (called first by the CLI)."""
    if verbose_flag:
        os.environ[VERBOSE_ENV] = "1"
    if verbose():
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


def is_noise(line: str) -> bool:
    return bool(_NOISE.search(line))


@contextlib.contextmanager
def capture_stderr():
    """Silence known start-up noise written to fd 2 inside the block (C++ included); replay
    anything else afterwards. Does nothing when verbose or when fd 2 cannot be redirected."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            kept = [ln for ln in text.splitlines() if ln.strip() and not is_noise(ln)]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)


def silence_python_loggers() -> None:
    """TensorFlow's and absl's Python loggers: errors only (unless verbose)."""
    if verbose():
        return
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
