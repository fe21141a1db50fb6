"""A production process (a key configured) never loads the embedded upstream's audio stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys

AUDIO_STACK = ("numpy", "espeakng_loader", "lameenc", "soundfile", "voxgate_dev")


def test_importing_the_app_loads_no_embedded_upstream() -> None:
    probe = (
        "import json, sys\n"
        "import voxgate.app, voxgate.cli\n"
        f"print(json.dumps(sorted(m for m in {list(AUDIO_STACK)!r} if m in sys.modules)))\n"
    )
    env = {**os.environ, "DASHSCOPE_API_KEY": "sk-not-used"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
